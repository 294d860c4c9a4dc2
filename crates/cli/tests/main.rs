//! The cli crate's integration tests as one binary: one link and one set of generic
//! instances instead of one per file (CI builds them on two cores), and the tests of every
//! file share the test harness's threads. Each file stays a module of its own.

mod common;

mod access;
mod bench;
mod cli;
mod cluster;
mod demo;
mod device;
mod groups;
mod https;
mod image_tools;
mod inventory;
mod openssl;
mod remote_things;
mod rollout;
mod server;
mod settings;
mod t2g;
mod trust;
