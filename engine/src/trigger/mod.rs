//! Triggers that decide when a run's data is ready, around the pure rules of
//! `crate::core::gate`.

pub mod kafka;
