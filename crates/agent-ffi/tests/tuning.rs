//! The stream tuning C sets in `FerrotaConfig` (block size, blocks per request, requests in
//! flight) reaches the agent: the first window of stream requests, before any block is
//! answered, has the configured shape; zero keeps the agent's defaults.

mod common;

use std::collections::VecDeque;

use common::{Board, CData, Mem, fixture};
use ferrota_agent_ffi::*;
use ferrota_proto::stream::StreamRequest;
use ferrota_sim::harness::{Msg, Service};
use ferrota_sim::images::ota::{Spec, image};

/// One stream request as the agent sent it: `(block size, offset, blocks)`.
type Request = (u32, Option<u32>, Option<u32>);

/// Creates the agent with `tune` applied to the test configuration and runs it against the
/// Jobs + Streams model, answering everything but the data blocks: the stream requests it
/// sends before any block arrives are its first window.
fn first_window(tune: impl Fn(&mut FerrotaConfig)) -> Vec<Request> {
    let mut board = Board::new();
    let data = CData::new();
    let mut mem = Mem::new();
    let mut server = fixture(&image(Spec::new(2, 2)));
    let mut cfg = data.config(&board);
    tune(&mut cfg);
    let p = board.platform();
    let mut agent = std::ptr::null_mut();
    let mut buf = vec![0u8; FERROTA_TRANSMIT_BUF_MIN];
    let mut requests = vec![];
    let mut to_device: VecDeque<Msg> = VecDeque::new();
    let mut now = 1_000_000u64;
    // SAFETY (whole block): everything lives for the test; `mem` is aligned and large enough;
    // the agent is live until deinit.
    unsafe {
        let st = ferrota_agent_init(mem.ptr(), FERROTA_AGENT_SIZE, &cfg, &p, now, &mut agent);
        assert_eq!(st, FerrotaStatus::FerrotaOk);
        assert_eq!(
            ferrota_agent_handle_connected(agent, now),
            FerrotaStatus::FerrotaOk
        );
        loop {
            let mut t = std::mem::MaybeUninit::<FerrotaTransmit>::uninit();
            while ferrota_agent_poll_transmit(agent, buf.as_mut_ptr(), buf.len(), t.as_mut_ptr())
                == FerrotaStatus::FerrotaOk
            {
                let t = t.assume_init();
                if t.kind != FerrotaTransmitKind::FerrotaPublish {
                    continue;
                }
                let topic = std::str::from_utf8(&t.topic[..t.topic_len]).unwrap();
                let payload = &buf[..t.payload_len];
                if topic.contains("/streams/") && topic.ends_with("/get/cbor") {
                    let r = StreamRequest::decode(payload).expect("a stream request");
                    requests.push((r.block_size, r.offset, r.num_blocks));
                }
                let replies = server.handle(topic, payload);
                to_device.extend(
                    replies
                        .into_iter()
                        .filter(|(topic, _)| !topic.ends_with("/data/cbor")),
                );
            }
            let Some((topic, payload)) = to_device.pop_front() else {
                break;
            };
            now += 1_000;
            let st = ferrota_agent_handle_message(
                agent,
                now,
                topic.as_ptr(),
                topic.len(),
                payload.as_ptr(),
                payload.len(),
            );
            assert_eq!(st, FerrotaStatus::FerrotaOk);
        }
        assert_eq!(ferrota_agent_deinit(agent), FerrotaStatus::FerrotaOk);
    }
    requests
}

/// `n` requests of `blocks` blocks of `size` bytes from block 0 on.
fn window(n: u32, size: u32, blocks: u32) -> Vec<Request> {
    (0..n)
        .map(|i| (size, Some(i * blocks), Some(blocks)))
        .collect()
}

#[test]
fn the_first_window_has_the_configured_block_size_blocks_and_requests() {
    let tuned = first_window(|c| {
        c.block_size = 1024;
        c.blocks_per_request = 8;
        c.requests_in_flight = 2;
    });
    assert_eq!(
        tuned,
        window(2, 1024, 8),
        "two requests of eight 1 KB blocks"
    );
}

#[test]
fn zero_keeps_the_agents_default_for_that_field() {
    // Config::new's defaults: 4 KB blocks, 32 blocks per request, FERROTA_REQUESTS_IN_FLIGHT_MAX
    // (40) requests in flight. The file is long enough for every window below to be full.
    let max = FERROTA_REQUESTS_IN_FLIGHT_MAX;
    assert!(image(Spec::new(2, 2)).file.len() >= max as usize * 8 * 256);
    let block_size = first_window(|c| {
        c.blocks_per_request = 8;
        c.requests_in_flight = 2;
    });
    assert_eq!(block_size, window(2, 4096, 8));
    let per_request = first_window(|c| {
        c.block_size = 1024;
        c.requests_in_flight = 2;
    });
    assert_eq!(per_request, window(2, 1024, 32));
    let in_flight = first_window(|c| {
        c.block_size = 256;
        c.blocks_per_request = 8;
    });
    assert_eq!(in_flight, window(max, 256, 8));
}
