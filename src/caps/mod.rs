//! The data side: participants TSVs, CAPS file patterns and paths, the evaluation transforms, and
//! the dataset that turns a data group into network inputs.

pub mod cohorts;
pub mod dataset;
pub mod elements;
pub mod nifti_image;
pub mod participants;
pub mod paths;
pub mod roi;
pub mod transforms;
