//! The server's integration tests as one binary: one link and one set of generic instances
//! instead of one per file (CI builds them on two cores), and the tests of every file share
//! the test harness's threads. Each file stays a module of its own.

mod common;

mod api_client;
mod api_strict;
mod blobs_s3;
mod broker_auth;
mod console;
mod delta_ota;
mod https;
mod identity;
mod inventory;
mod job_limits;
mod jobs_streams;
mod layers;
mod lease;
mod limits;
mod metrics;
mod notify_and_timeouts;
mod openapi;
mod operators;
mod ota_create;
mod revocation;
mod rollout;
mod rollout_validation;
mod services_memory;
mod session;
mod shadow;
mod startup;
mod store;
mod store_pg;
mod thing_index;
mod trust;
