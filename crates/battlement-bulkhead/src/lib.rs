//! Battlement bulkhead layer (not yet implemented).
