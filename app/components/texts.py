"""One-line explanations shown next to each choice on the Model and Train pages (text only)."""

BODIES = {
    "gpt2": "GPT-2: a causal Transformer; each position attends to the items before it (SASRec).",
    "llama": "Llama: a modern causal decoder with rotary positions, RMSNorm and SwiGLU.",
    "bert": "BERT: a bidirectional Transformer; each position attends to the whole session.",
    "roberta": "RoBERTa: BERT's architecture with a different initialisation; bidirectional.",
    "electra": "ELECTRA: a BERT-style bidirectional body, usually trained with replaced-item detection.",
    "albert": "ALBERT: BERT with one layer's weights shared across all layers (fewer parameters).",
    "xlnet": "XLNet: relative positions and two-stream attention; the only body that can do permutation LM.",
    "longformer": "Longformer: sliding-window attention for long sequences; bidirectional only.",
    "gru": "GRU: a recurrent network reading the session left to right (GRU4Rec); no attention.",
    "lstm": "LSTM: a recurrent network with a memory cell; no attention.",
}

MASKINGS = {
    "clm": "Causal LM: every position predicts the next item (needs no [MASK]).",
    "mlm": "Masked LM: random items are hidden behind [MASK] and predicted from both sides (BERT4Rec).",
    "plm": "Permutation LM: items are predicted in a random order by XLNet's query stream.",
    "rtd": "Replaced-item detection: a small generator swaps items in; the body spots them (ELECTRA).",
}

LOSSES = {
    "ce": "Full softmax cross-entropy over every item: the most accurate, cost grows with the catalogue.",
    "sampled_ce": "Cross-entropy over the target and sampled negatives: for very large catalogues.",
    "bce": "Binary cross-entropy, target vs sampled negatives (the original SASRec loss).",
    "gbce": "Generalised BCE (gSASRec): BCE corrected for the sampling, close to full softmax quality.",
}

AGGREGATIONS = {
    "concat": "Concatenate item and feature vectors, then project to d_model.",
    "sum": "Project every feature to d_model and add them to the item vector.",
    "sum_times_item": "Multiply the item vector by the sum of the projected features.",
}

KNOBS = {
    "d_model": "Width of every vector (item embedding, hidden state). Wider = more capacity, slower.",
    "n_layers": "Stacked Transformer blocks (or RNN layers).",
    "n_heads": "Attention heads per layer; d_model must be divisible by it.",
    "dropout": "Share of units randomly zeroed while training (regularisation).",
    "max_len": "Most recent items of a session the model reads; older ones are dropped.",
    "mlm_probability": "Share of items hidden behind [MASK] in each training session.",
    "n_negatives": "Negatives sampled per batch for the sampled losses.",
    "epochs": "Passes over the training sessions.",
    "batch_size": "Sessions per training step.",
    "lr": "Learning rate of the AdamW optimiser.",
    "max_steps": "Stop after this many steps (0 = train the full number of epochs).",
    "group_by_length": "Each batch holds sessions of similar length and is cut to its longest one, so "
    "the model does not compute on padding: about 2x faster when most sessions are much shorter than "
    "max_len. Every target keeps the same weight in the loss. Off: uniformly random batches.",
}
