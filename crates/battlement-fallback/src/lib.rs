//! Battlement fallback layer (not yet implemented).
