//! The in-process AWS IoT services on `$aws/things/<thing>/…`: which PUBLISH goes to Jobs,
//! which to Streams, which to the Device Shadow, which topics are reserved for the services'
//! own output.

use ferrota_proto::topic::{JobsTopic, Reply, ShadowReply, StreamOp, Topic, TopicError, TopicKind};

use crate::context::Services;
use crate::{jobs, shadow, streams};

/// What became of a PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A service consumed it (and committed its effects).
    Handled,
    /// Not a service topic: route it to subscribers.
    NotMine,
    /// A topic only the services publish on (responses, notifications, stream data).
    Reserved,
    /// The store failed; the request was not executed and must not be acknowledged.
    Failed,
}

/// Dispatches a PUBLISH from `client_id` (already allowed by the policy).
pub async fn on_publish(
    broker: &Services,
    client_id: &str,
    thing: &str,
    topic: &str,
    payload: &[u8],
) -> Outcome {
    let Some(rest) = topic.strip_prefix(ferrota_proto::topic::THINGS_PREFIX) else {
        return Outcome::NotMine;
    };
    let parsed = match Topic::parse(topic) {
        Ok(t) => t,
        Err(TopicError::NamedShadow) => {
            shadow::named_shadow(broker, topic, payload);
            return Outcome::Handled;
        }
        Err(_) => {
            // `$aws/things/<t>/jobs/…` that is not a Jobs topic (e.g. `jobs//update`, which the
            // official device publishes in a corner case): AWS answers InvalidTopic.
            let mut segs = rest.splitn(3, '/');
            let area = segs.nth(1);
            return match area {
                Some("jobs") => {
                    jobs::invalid_topic(broker, client_id, topic, payload);
                    Outcome::Handled
                }
                Some("streams") => {
                    tracing::info!(
                        client = client_id,
                        topic,
                        "ignored request on an invalid stream topic"
                    );
                    Outcome::Handled
                }
                _ => Outcome::NotMine,
            };
        }
    };
    let r = match parsed.kind {
        TopicKind::Jobs(j) => match j {
            JobsTopic::GetPending(Reply::Request)
            | JobsTopic::StartNext(Reply::Request)
            | JobsTopic::Describe {
                reply: Reply::Request,
                ..
            }
            | JobsTopic::Update {
                reply: Reply::Request,
                ..
            } => jobs::handle(broker, client_id, parsed.thing, j, payload).await,
            _ => return Outcome::Reserved,
        },
        TopicKind::Stream {
            stream,
            op,
            encoding,
        } => match op {
            StreamOp::Get | StreamOp::Describe => {
                streams::handle(broker, parsed.thing, stream, op, encoding, payload).await
            }
            _ => return Outcome::Reserved,
        },
        TopicKind::Shadow {
            op,
            reply: ShadowReply::Request,
        } => shadow::handle(broker, client_id, thing, parsed.thing, op, payload).await,
        TopicKind::Shadow { .. } => return Outcome::Reserved,
    };
    match r {
        Ok(()) => Outcome::Handled,
        Err(e) => {
            tracing::error!(client = client_id, topic, error = %e, "service request failed");
            Outcome::Failed
        }
    }
}
