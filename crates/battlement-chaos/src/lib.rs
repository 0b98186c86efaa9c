//! Battlement chaos layer (not yet implemented).
