"""Data: the embedded corpora, the WordPiece tokenizer, MLM masking and image preprocessing."""
