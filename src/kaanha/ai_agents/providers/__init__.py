"""Model providers behind one interface: the builtin retrieval answerer, OpenAI-compatible servers, Anthropic."""
