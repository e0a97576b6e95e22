//! The MAPS: `maps.json`, the folder layout (the only code that builds MAPS paths), data groups
//! (definition, creation, leakage check), the lock of a group, and the validation predictions
//! kept from training.

pub mod group;
pub mod json;
pub mod layout;
pub mod lock;
pub mod validation;
