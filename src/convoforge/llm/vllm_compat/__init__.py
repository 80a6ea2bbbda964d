"""vLLM compatibility shims installed into vLLM's own environment by convoforge.llm.vllm_server."""
