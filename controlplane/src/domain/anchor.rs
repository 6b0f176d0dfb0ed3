//! The rules of calls anchored over the NG protocol (docs/ng.md, Parties): which NG party is
//! which earshot party, the agent id a softswitch passes along, and what a repeated offer or
//! answer means. Pure: the use cases (`app::anchors`) apply these decisions to the records,
//! the media and the store.
//!
//! An NG call is an earshot call (docs/design.md §2): the offerer's tag names one leg, the
//! answerer's the other. Which is the customer is decided once, at the first offer, by the
//! offerer's `label` (`customer`, `agent`, `agent:<id>`), else by the configured default
//! ([`PartyRule`]); later labels cannot swap the legs, whose local addresses are already in
//! both parties' SDP.

use core::fmt;
use std::net::SocketAddr;

use dataplane::wire::g711::Codec;

use crate::domain::agents::UserId;
use crate::domain::call::Party;
use crate::domain::ids::quote;

/// Longest NG call-id or tag, in bytes. SIP puts no bound on a Call-ID or a tag (RFC 3261
/// §25.1); real ones are tens of bytes, and a bound keeps a hostile request from making the
/// appliance store and index megabytes.
pub const NG_ID_LEN_MAX: usize = 256;

/// An NG call-id or tag: 1 to [`NG_ID_LEN_MAX`] bytes, no control characters and no spaces
/// (RFC 3261 §25.1: a Call-ID is `word ["@" word]`, a tag a `token`, neither has either).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NgId(String);

impl NgId {
    /// `field` names the value in the error (`call-id`, `from-tag`, `to-tag`).
    pub fn parse(field: &'static str, s: &str) -> Result<NgId, AnchorRefusal> {
        if s.is_empty()
            || s.len() > NG_ID_LEN_MAX
            || s.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(AnchorRefusal::InvalidId {
                field,
                quoted: quote(s),
            });
        }
        Ok(NgId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an NG signal cannot be applied; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorRefusal {
    #[error("{field}: {quoted} is not an NG id (1 to 256 bytes, no spaces or control characters)")]
    InvalidId { field: &'static str, quoted: String },
    /// The tag names neither party of the call.
    #[error("{field} {tag} is neither party of NG call {call_id}")]
    UnknownTag {
        field: &'static str,
        tag: NgId,
        call_id: NgId,
    },
    /// The data plane drops every audio payload but G.711's (docs/design.md §1 codecs): a call
    /// offering neither law cannot be relayed, let alone supervised.
    #[error("no PCMU or PCMA in the SDP: earshot relays and mixes G.711 only")]
    NoMixableCodec,
    /// A leg's codec is fixed when the call is anchored (the media engine has no codec change);
    /// a later SDP without it cannot be carried.
    #[error(
        "the {party} leg carries {from}; an SDP without it (offering {to}) cannot change it mid-call"
    )]
    CodecChange {
        party: &'static str,
        from: &'static str,
        to: &'static str,
    },
    #[error("agent id in {field}: {reason}")]
    InvalidAgent { field: &'static str, reason: String },
}

/// The configured default: which party the offerer is when its `label` does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartyRule {
    pub offerer: Party,
}

impl Default for PartyRule {
    /// A contact center's calls come in: the caller (offerer) is the customer.
    fn default() -> PartyRule {
        PartyRule {
            offerer: Party::Customer,
        }
    }
}

/// The other party of a call.
pub const fn other(party: Party) -> Party {
    match party {
        Party::Customer => Party::Agent,
        Party::Agent => Party::Customer,
    }
}

/// What the SDP sender's `label` and `metadata` say about it and the call's agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Said {
    /// `label=customer`, `label=agent` or `label=agent:<id>`.
    pub party: Option<Party>,
    /// `label=agent:<id>`, or `agent:<id>` in `metadata`.
    pub agent_id: Option<UserId>,
}

/// Reads a `label` and a `metadata` string. A label that names no party (`caller`, free text:
/// rtpengine's labels are the client's own names) says nothing. `metadata` is a list of
/// entries separated by `|`, `,`, `;` or `&` (Kamailio 5.6 flag values cannot hold spaces);
/// the first `agent:<id>` or `agent=<id>` entry names the agent. An agent id must be a user
/// id (docs/api.md: `agent_id`): a malformed one is refused, not dropped, so a misconfigured
/// softswitch learns of it.
pub fn read_labels(label: Option<&str>, metadata: Option<&str>) -> Result<Said, AnchorRefusal> {
    let mut said = Said::default();
    if let Some(label) = label {
        let label = label.trim();
        if label.eq_ignore_ascii_case("customer") {
            said.party = Some(Party::Customer);
        } else if label.eq_ignore_ascii_case("agent") {
            said.party = Some(Party::Agent);
        } else if let Some(id) = agent_entry(label) {
            said.party = Some(Party::Agent);
            said.agent_id = Some(agent_id("label", id)?);
        }
    }
    if said.agent_id.is_none()
        && let Some(id) = metadata.and_then(|m| m.split(['|', ',', ';', '&']).find_map(agent_entry))
    {
        said.agent_id = Some(agent_id("metadata", id)?);
    }
    Ok(said)
}

/// `agent:<id>` or `agent=<id>` → `<id>`.
fn agent_entry(entry: &str) -> Option<&str> {
    let entry = entry.trim();
    let (key, value) = entry.split_once([':', '='])?;
    key.eq_ignore_ascii_case("agent").then_some(value)
}

fn agent_id(field: &'static str, id: &str) -> Result<UserId, AnchorRefusal> {
    UserId::parse(id).map_err(|e| AnchorRefusal::InvalidAgent {
        field,
        reason: format!("{}: {}", quote(id), e.reason),
    })
}

/// The NG side of an anchored call: its call-id, and which tag is which party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgAnchor {
    pub call_id: NgId,
    pub offerer_tag: NgId,
    /// The party the offerer is (decided at the first offer).
    pub offerer: Party,
    /// Known once the first answer came.
    pub answerer_tag: Option<NgId>,
}

impl NgAnchor {
    pub fn answerer(&self) -> Party {
        other(self.offerer)
    }

    /// The party a tag names, if either.
    pub fn party_of(&self, tag: &NgId) -> Option<Party> {
        if *tag == self.offerer_tag {
            Some(self.offerer)
        } else if self.answerer_tag.as_ref() == Some(tag) {
            Some(self.answerer())
        } else {
            None
        }
    }

    /// Every known tag with its party, the offerer's first.
    pub fn tags(&self) -> Vec<(NgId, Party)> {
        let mut tags = vec![(self.offerer_tag.clone(), self.offerer)];
        if let Some(t) = &self.answerer_tag {
            tags.push((t.clone(), self.answerer()));
        }
        tags
    }
}

/// What an `offer` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferDecision {
    /// No live call has this call-id: anchor one; the offerer is `offerer`.
    New { offerer: Party },
    /// A known party offers again (a re-INVITE from either side, or the same offer resent by
    /// another SIP worker, docs/ng.md): keep the ports, update `sender`'s remote and codec.
    Update { sender: Party },
    /// An offer from a tag the call does not know while the first offer is still unanswered:
    /// an INVITE retransmission handled by another SIP worker (docs/ng.md, Retransmissions).
    /// Nothing changes; the answer is the first offer's.
    Repeat { sender: Party },
}

/// Decides an `offer` of `from_tag` on the live call `anchor` (if one has the call-id); `said`
/// is the sender's label.
pub fn decide_offer(
    anchor: Option<&NgAnchor>,
    from_tag: &NgId,
    said: Option<Party>,
    rule: PartyRule,
) -> Result<OfferDecision, AnchorRefusal> {
    let Some(anchor) = anchor else {
        return Ok(OfferDecision::New {
            offerer: said.unwrap_or(rule.offerer),
        });
    };
    if let Some(sender) = anchor.party_of(from_tag) {
        return Ok(OfferDecision::Update { sender });
    }
    match anchor.answerer_tag {
        None => Ok(OfferDecision::Repeat {
            sender: anchor.offerer,
        }),
        Some(_) => Err(AnchorRefusal::UnknownTag {
            field: "from-tag",
            tag: from_tag.clone(),
            call_id: anchor.call_id.clone(),
        }),
    }
}

/// What an `answer` does: the SDP is `sender`'s; `tag` becomes the answerer's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerDecision {
    pub sender: Party,
    /// The answerer's tag to record: the first answer's, or a later answer from another fork
    /// (RFC 3261 §13.2.2.4: the last 2xx is the dialog the caller keeps). `None`: unchanged.
    pub tag: Option<NgId>,
}

/// Decides an `answer` (`from_tag`: the offer's sender, `to_tag`: the answer's).
///
/// The answer to the offerer's offer names the answerer; to a re-offer of the answerer, the
/// offerer. A repeated answer (a 200 OK retransmission) decides the same again.
pub fn decide_answer(
    anchor: &NgAnchor,
    from_tag: &NgId,
    to_tag: Option<&NgId>,
) -> Result<AnswerDecision, AnchorRefusal> {
    let unknown = |field, tag: &NgId| AnchorRefusal::UnknownTag {
        field,
        tag: tag.clone(),
        call_id: anchor.call_id.clone(),
    };
    if *from_tag == anchor.offerer_tag {
        let tag = match (to_tag, &anchor.answerer_tag) {
            (Some(to), Some(known)) if to == known => None,
            (Some(to), _) => Some(to.clone()),
            (None, _) => None,
        };
        return Ok(AnswerDecision {
            sender: anchor.answerer(),
            tag,
        });
    }
    if anchor.answerer_tag.as_ref() == Some(from_tag) {
        return match to_tag {
            Some(to) if *to != anchor.offerer_tag => Err(unknown("to-tag", to)),
            _ => Ok(AnswerDecision {
                sender: anchor.offerer,
                tag: None,
            }),
        };
    }
    Err(unknown("from-tag", from_tag))
}

/// Whether `tag` may name `anchor` in a `delete` or `query`: either party's tag, or none.
pub fn tag_matches(anchor: &NgAnchor, tag: Option<&NgId>) -> bool {
    tag.is_none_or(|t| anchor.party_of(t).is_some())
}

/// A leg's codec after an SDP offering `offered` (the G.711 laws it lists, in order): the
/// first for a new leg; a leg keeps its codec while the SDP still lists it.
pub fn leg_codec(
    party: Party,
    current: Option<Codec>,
    offered: &[Codec],
) -> Result<Codec, AnchorRefusal> {
    let first = *offered.first().ok_or(AnchorRefusal::NoMixableCodec)?;
    match current {
        None => Ok(first),
        Some(c) if offered.contains(&c) => Ok(c),
        Some(c) => Err(AnchorRefusal::CodecChange {
            party: party.as_str(),
            from: c.name(),
            to: first.name(),
        }),
    }
}

/// A warning for a label that contradicts the mapping decided at the first offer (it is not
/// applied: the legs' addresses are in both parties' SDP already).
pub fn label_warning(said: Option<Party>, sender: Party) -> Option<String> {
    match said {
        Some(p) if p != sender => Some(format!(
            "label={} ignored: this tag is the call's {} (parties are mapped at the first offer)",
            p.as_str(),
            sender.as_str()
        )),
        _ => None,
    }
}

/// An offer or answer as the adapter read it: plain values, no SDP or bencode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub call_id: NgId,
    pub from_tag: NgId,
    pub to_tag: Option<NgId>,
    /// Where the SDP sender receives media (`None`: its SDP names no address, e.g. `c=0.0.0.0`;
    /// the leg latches, or keeps what it has).
    pub remote: Option<SocketAddr>,
    /// The G.711 laws the SDP lists, in its order (docs/design.md §1 codecs).
    pub codecs: Vec<Codec>,
    pub label: Option<String>,
    pub metadata: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NgId {
        NgId::parse("tag", s).unwrap()
    }

    fn anchor(answerer: Option<&str>) -> NgAnchor {
        NgAnchor {
            call_id: id("1-28469@127.0.0.1"),
            offerer_tag: id("caller"),
            offerer: Party::Customer,
            answerer_tag: answerer.map(id),
        }
    }

    #[test]
    fn ng_ids_are_bounded_and_have_no_spaces() {
        assert!(NgId::parse("call-id", "1-28469@127.0.0.1").is_ok());
        assert!(NgId::parse("call-id", &"a".repeat(NG_ID_LEN_MAX)).is_ok());
        for bad in [
            String::new(),
            "a".repeat(NG_ID_LEN_MAX + 1),
            "a b".to_owned(),
            "a\0".to_owned(),
        ] {
            let err = NgId::parse("from-tag", &bad).unwrap_err();
            assert!(err.to_string().starts_with("from-tag: "), "{err}");
        }
    }

    /// docs/ng.md, Parties: the offerer is the customer unless its label or the configured
    /// default says otherwise.
    #[test]
    fn the_first_offer_maps_the_offerer_by_label_else_by_the_rule() {
        let tag = id("caller");
        let agent_first = PartyRule {
            offerer: Party::Agent,
        };
        for (said, rule, offerer) in [
            (None, PartyRule::default(), Party::Customer),
            (None, agent_first, Party::Agent),
            (Some(Party::Agent), PartyRule::default(), Party::Agent),
            (Some(Party::Customer), agent_first, Party::Customer),
        ] {
            assert_eq!(
                decide_offer(None, &tag, said, rule),
                Ok(OfferDecision::New { offerer }),
                "{said:?} {rule:?}"
            );
        }
    }

    #[test]
    fn labels_and_metadata_name_the_party_and_the_agent() {
        let said = read_labels(Some("agent"), None).unwrap();
        assert_eq!((said.party, said.agent_id), (Some(Party::Agent), None));
        let said = read_labels(Some("customer"), Some("agent:1234")).unwrap();
        assert_eq!(said.party, Some(Party::Customer));
        assert_eq!(said.agent_id.unwrap().as_str(), "1234");
        let said = read_labels(Some("agent:a-7"), Some("agent:other")).unwrap();
        assert_eq!(said.party, Some(Party::Agent));
        assert_eq!(
            said.agent_id.unwrap().as_str(),
            "a-7",
            "the label's id first"
        );
        let said = read_labels(Some("callee"), Some("queue=7|agent=bob@acme")).unwrap();
        assert_eq!(said.party, None, "a label naming no party says nothing");
        assert_eq!(said.agent_id.unwrap().as_str(), "bob@acme");
        assert_eq!(read_labels(None, Some("queue=7")).unwrap(), Said::default());
        let err = read_labels(None, Some("agent:has/slash")).unwrap_err();
        assert!(
            matches!(
                err,
                AnchorRefusal::InvalidAgent {
                    field: "metadata",
                    ..
                }
            ),
            "{err}"
        );
        assert!(read_labels(Some("agent:"), None).is_err(), "an empty id");
    }

    /// A re-offer from either known tag updates that party; an unknown tag is a retransmission
    /// while unanswered, refused once answered.
    #[test]
    fn re_offers_update_the_sender_and_unknown_tags_repeat_until_answered() {
        let rule = PartyRule::default();
        let unanswered = anchor(None);
        assert_eq!(
            decide_offer(Some(&unanswered), &id("caller"), None, rule),
            Ok(OfferDecision::Update {
                sender: Party::Customer
            })
        );
        assert_eq!(
            decide_offer(Some(&unanswered), &id("worker-2"), None, rule),
            Ok(OfferDecision::Repeat {
                sender: Party::Customer
            })
        );
        let answered = anchor(Some("callee"));
        assert_eq!(
            decide_offer(Some(&answered), &id("callee"), Some(Party::Customer), rule),
            Ok(OfferDecision::Update {
                sender: Party::Agent
            }),
            "a label cannot swap the legs"
        );
        assert!(matches!(
            decide_offer(Some(&answered), &id("stranger"), None, rule),
            Err(AnchorRefusal::UnknownTag {
                field: "from-tag",
                ..
            })
        ));
    }

    #[test]
    fn answers_name_the_answerer_and_repeat_idempotently() {
        let unanswered = anchor(None);
        let first = decide_answer(&unanswered, &id("caller"), Some(&id("callee"))).unwrap();
        assert_eq!(
            first,
            AnswerDecision {
                sender: Party::Agent,
                tag: Some(id("callee"))
            }
        );
        let answered = anchor(Some("callee"));
        assert_eq!(
            decide_answer(&answered, &id("caller"), Some(&id("callee"))).unwrap(),
            AnswerDecision {
                sender: Party::Agent,
                tag: None
            },
            "a repeated answer changes no tag"
        );
        assert_eq!(
            decide_answer(&answered, &id("caller"), Some(&id("fork-2")))
                .unwrap()
                .tag,
            Some(id("fork-2")),
            "another fork's answer is the dialog kept"
        );
        // The answer to the callee's re-INVITE: tags swapped, the SDP is the caller's.
        assert_eq!(
            decide_answer(&answered, &id("callee"), Some(&id("caller"))).unwrap(),
            AnswerDecision {
                sender: Party::Customer,
                tag: None
            }
        );
        assert!(decide_answer(&answered, &id("callee"), Some(&id("x"))).is_err());
        assert!(decide_answer(&answered, &id("stranger"), None).is_err());
    }

    #[test]
    fn delete_and_query_take_either_tag_or_none() {
        let answered = anchor(Some("callee"));
        assert!(tag_matches(&answered, None));
        assert!(tag_matches(&answered, Some(&id("caller"))));
        assert!(tag_matches(&answered, Some(&id("callee"))));
        assert!(!tag_matches(&answered, Some(&id("stranger"))));
        assert_eq!(
            answered.tags(),
            vec![
                (id("caller"), Party::Customer),
                (id("callee"), Party::Agent)
            ]
        );
    }

    #[test]
    fn a_leg_codec_is_the_first_law_and_then_stays() {
        use Codec::{Pcma, Pcmu};
        assert_eq!(leg_codec(Party::Customer, None, &[Pcma, Pcmu]), Ok(Pcma));
        assert_eq!(
            leg_codec(Party::Agent, Some(Pcmu), &[Pcma, Pcmu]),
            Ok(Pcmu),
            "still listed: kept"
        );
        assert_eq!(
            leg_codec(Party::Agent, None, &[]),
            Err(AnchorRefusal::NoMixableCodec)
        );
        let err = leg_codec(Party::Agent, Some(Pcmu), &[Pcma]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the agent leg carries pcmu; an SDP without it (offering pcma) cannot change it mid-call"
        );
    }

    #[test]
    fn a_contradicting_label_is_a_warning() {
        assert_eq!(label_warning(None, Party::Agent), None);
        assert_eq!(label_warning(Some(Party::Agent), Party::Agent), None);
        assert!(
            label_warning(Some(Party::Customer), Party::Agent)
                .unwrap()
                .contains("label=customer ignored")
        );
    }
}
