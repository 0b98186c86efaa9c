//! Battlement health layer (not yet implemented).
