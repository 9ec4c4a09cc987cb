//! Checkpoints (being built): committed offsets per file, replaced atomically.
