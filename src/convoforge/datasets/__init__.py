"""Dataset records, filters, export to Hugging Face datasets, dataset cards."""
