//! Telling stream traffic from job traffic by parsing the topic, not by looking for
//! `/streams/` in it (issue 15: the board and the sim harness did the latter).

use ferrota_proto::topic::{StreamOp, Topic};

/// A thing named `streams` and a job id `streams` are legal AWS names (`[a-zA-Z0-9:_-]`,
/// `[a-zA-Z0-9_-]`), and their Jobs topics contain `/streams/`: they are not stream topics.
#[test]
fn names_that_read_streams_are_not_stream_topics() {
    for t in [
        "$aws/things/streams/jobs/notify",
        "$aws/things/streams/jobs/get/accepted",
        "$aws/things/dev-1/jobs/streams/update",
        "$aws/things/dev-1/jobs/streams/get/accepted",
        "$aws/things/streams/jobs/streams/update/accepted",
    ] {
        assert!(
            t.contains("/streams/"),
            "{t}: the substring test would misclassify it"
        );
        assert!(Topic::parse(t).is_ok(), "{t} is a legal topic");
        assert_eq!(Topic::stream_op_of(t), None, "{t}");
    }
}

/// Real stream topics, also of a thing named `streams` or a stream named `get`-like, are.
#[test]
fn stream_topics_give_their_operation() {
    let cases = [
        (
            "$aws/things/dev-1/streams/AFR_OTA-x/get/cbor",
            StreamOp::Get,
        ),
        ("$aws/things/streams/streams/get/data/cbor", StreamOp::Data),
        (
            "$aws/things/dev-1/streams/s/describe/json",
            StreamOp::Describe,
        ),
        (
            "$aws/things/dev-1/streams/s/rejected/cbor",
            StreamOp::Rejected,
        ),
    ];
    for (t, op) in cases {
        assert_eq!(Topic::stream_op_of(t), Some(op), "{t}");
    }
    // Not an AWS topic at all.
    assert_eq!(Topic::stream_op_of("x/streams/s/get/cbor"), None);
}
