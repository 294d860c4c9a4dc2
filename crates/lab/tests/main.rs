//! The lab crate's integration tests as one binary: one link and one set of generic
//! instances instead of one per file (CI builds them on two cores), and the tests of every
//! file share the test harness's threads. Each file stays a module of its own.

mod common;

mod activation_target;
mod agent_benchmark;
mod agent_delta;
mod agent_power_cuts;
mod agent_properties;
mod agent_update;
mod app_jobs;
mod attacks;
mod e2e;
mod inventory;
mod mosquitto;
mod rabbitmq;
mod rollout_sim;
