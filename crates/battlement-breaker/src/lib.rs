//! Battlement breaker layer (not yet implemented).
