//! What nodes send each other through `pg_notify` (JSON; PostgreSQL caps a payload at 8000 bytes, a
//! grant with its candidates is a few hundred).

use p2p_proto::control::{ErrorCode, ServerMsg, SessionGrant};
use p2p_proto::Uid;
use serde::{Deserialize, Serialize};

use crate::auth::Refusal;

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeMsg {
    /// To the node holding the target: offer it this session (the target's grant, naming the relay of
    /// the initiator's node `from`), and answer `from`.
    Forward { from: String, grant: SessionGrant },
    /// The target's node to the initiator's: accepted, or why not.
    Answer {
        session_id: u64,
        refusal: Option<(ErrorCode, String)>,
    },
    /// A message of the relay (a punch with the initiator's candidates) for a target on the receiving
    /// node.
    Deliver { uid: Uid, msg: ServerMsg },
}

pub fn refusal_of(answer: Option<(ErrorCode, String)>) -> Result<(), Refusal> {
    match answer {
        None => Ok(()),
        Some((code, message)) => Err(Refusal::new(code, message)),
    }
}
