"""Provider adapters: pure translation between the OpenAI job format and each provider."""
