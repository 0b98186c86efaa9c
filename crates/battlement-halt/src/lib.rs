//! Battlement halt layer (not yet implemented).
