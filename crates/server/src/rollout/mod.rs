//! Fleet rollouts (issue 16): AWS IoT Jobs' rollout rate, abort criteria, retries and
//! scheduling, and Ferrota's gated waves, as a service over [`crate::context::Services`].
//!
//! | module | concern |
//! |---|---|
//! | [`config`] | a job's configuration: AWS's validation, stored form |
//! | [`rate`] | how many notifications a minute (constant, exponential) |
//! | [`window`] | maintenance windows (AWS cron expressions) |

pub mod config;
pub mod rate;
pub mod window;
