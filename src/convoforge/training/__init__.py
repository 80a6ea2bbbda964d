"""LoRA SFT, reward model, RL/DPO and retriever tuning."""
