//! The token file model and one renderer per consumer format.
