//! The MAPS: `maps.json`, the folder layout (the only code that builds MAPS paths), and data
//! groups (definition, creation, leakage check).

pub mod group;
pub mod json;
pub mod layout;
pub mod lock;
