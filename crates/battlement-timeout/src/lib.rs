//! Battlement timeout layer (not yet implemented).
