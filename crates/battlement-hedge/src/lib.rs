//! Battlement hedge layer (not yet implemented).
