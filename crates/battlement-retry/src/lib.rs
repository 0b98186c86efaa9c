//! Battlement retry layer (not yet implemented).
