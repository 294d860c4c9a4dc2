//! The classic Device Shadow's topics: every request and reply parses and writes back to the
//! same text; named shadows and unknown suffixes are refused.

use ferrota_proto::topic::{ShadowOp, ShadowReply, Topic, TopicError, TopicKind};

#[test]
fn every_classic_shadow_topic_round_trips() {
    let ops = [ShadowOp::Update, ShadowOp::Get, ShadowOp::Delete];
    let replies = [
        ShadowReply::Request,
        ShadowReply::Accepted,
        ShadowReply::Rejected,
        ShadowReply::Delta,
        ShadowReply::Documents,
    ];
    let mut n = 0;
    for op in ops {
        for reply in replies {
            let t = Topic::shadow("dev-1", op, reply);
            let text = t.to_string();
            let update_only = matches!(reply, ShadowReply::Delta | ShadowReply::Documents);
            if update_only && op != ShadowOp::Update {
                assert_eq!(Topic::parse(&text), Err(TopicError::Unknown), "{text}");
                continue;
            }
            n += 1;
            assert_eq!(Topic::parse(&text), Ok(t), "{text}");
            assert_eq!(Topic::stream_op_of(&text), None);
        }
    }
    assert_eq!(n, 11);
    assert_eq!(
        Topic::shadow("dev-1", ShadowOp::Update, ShadowReply::Delta).to_string(),
        "$aws/things/dev-1/shadow/update/delta"
    );
    assert_eq!(
        Topic::parse("$aws/things/t:1/shadow/get").map(|t| t.kind),
        Ok(TopicKind::Shadow {
            op: ShadowOp::Get,
            reply: ShadowReply::Request
        })
    );
}

#[test]
fn named_and_unknown_shadow_topics_are_refused() {
    assert_eq!(
        Topic::parse("$aws/things/dev-1/shadow/name/cfg/update"),
        Err(TopicError::NamedShadow)
    );
    assert_eq!(
        Topic::parse("$aws/things/dev-1/shadow/name/cfg/get/accepted"),
        Err(TopicError::NamedShadow)
    );
    for t in [
        "$aws/things/dev-1/shadow",
        "$aws/things/dev-1/shadow/",
        "$aws/things/dev-1/shadow/list",
        "$aws/things/dev-1/shadow/update/accepted/x",
        "$aws/things/dev-1/shadow/update/other",
        "$aws/things/dev-1/shadow/get/delta",
        "$aws/things/dev-1/shadow/delete/documents",
    ] {
        assert_eq!(Topic::parse(t), Err(TopicError::Unknown), "{t}");
    }
    assert!(matches!(
        Topic::parse("$aws/things/a b/shadow/update"),
        Err(TopicError::InvalidName(_))
    ));
}
