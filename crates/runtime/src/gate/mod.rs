//! Readiness gates' outside world: the monitor that looks at each watched source and sends
//! what it saw to the loop. The decisions themselves are pure, in `sluice_core::gate`.

pub mod kafka;
