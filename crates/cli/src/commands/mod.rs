pub mod calibrate;
pub mod estimate;
pub mod models;
pub mod systems;
pub mod validate;
