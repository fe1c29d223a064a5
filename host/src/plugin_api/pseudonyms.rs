//! Pseudonymous person ids, for installations that are not to see who
//! people are: each IGSID becomes a pseudonym that is stable for the
//! installation (HMAC-SHA256 under a key the host keeps, derived per
//! installation), the same person has unrelated pseudonyms in two
//! installations, and usernames and raw payloads are removed. A pseudonym
//! is mapped back only to the person whose event the run handles: such an
//! installation can answer that person, and no one else.
//!
//! The inbox, the journal, dead letters and replays keep the real ids:
//! only what crosses into the sandbox is disguised.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::events::{Event, EventKind};

/// The pseudonyms of one installation.
#[derive(Clone)]
pub struct Pseudonyms {
    key: [u8; 32],
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms(…)")
    }
}

impl Pseudonyms {
    /// The pseudonyms of installation `id`, under the host's `secret`.
    pub fn new(secret: &[u8; 32], id: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
        mac.update(b"igloo-pseudonyms/v1\0");
        mac.update(id.as_bytes());
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// `igsid`'s pseudonym: `p` and 24 hex digits (not an IGSID's alphabet,
    /// so neither can pass for the other).
    pub fn of(&self, igsid: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(igsid.as_bytes());
        format!("p{}", hex::encode(&mac.finalize().into_bytes()[..12]))
    }

    /// The real id behind `given`, if it is the pseudonym of the person
    /// whose `event` this is.
    pub fn reveal<'e>(&self, given: &str, event: &'e Event) -> Option<&'e str> {
        let person = event.counterpart_id()?;
        (self.of(person) == given).then_some(person)
    }

    /// `event` as the installation sees it: people's ids replaced by
    /// pseudonyms, usernames and raw payloads removed. The business
    /// account's own id is not a person's and stays.
    pub fn disguise(&self, event: &Event) -> Event {
        let mut event = event.clone();
        let account = event.account_id.clone();
        let person = |id: &mut String| {
            if *id != account {
                *id = self.of(id);
            }
        };
        // The event's id may carry a person's id (a seen receipt's is built
        // from the sender): a digest of it is as unique.
        event.key = format!("e{}", &self.of(&event.key)[1..]);
        match &mut event.kind {
            EventKind::Message(m) => {
                person(&mut m.sender_id);
                person(&mut m.recipient_id);
            }
            EventKind::MessageDeleted(d) => person(&mut d.sender_id),
            EventKind::MessageEdit(e) => person(&mut e.sender_id),
            EventKind::Reaction(r) => person(&mut r.sender_id),
            EventKind::Postback(p) => person(&mut p.sender_id),
            EventKind::Seen(s) => person(&mut s.sender_id),
            EventKind::Referral(r) => person(&mut r.sender_id),
            EventKind::Optin(o) => person(&mut o.sender_id),
            EventKind::Handover(h) => person(&mut h.sender_id),
            EventKind::Comment(c) | EventKind::LiveComment(c) => {
                if let Some(from) = &mut c.from_id {
                    person(from);
                }
                c.from_username = None;
            }
            EventKind::Timer(t) => person(&mut t.person_id),
            EventKind::Unknown(u) => u.raw_json = "{}".into(),
            EventKind::Mention(_) | EventKind::StoryInsights(_) => {}
        }
        event
    }
}
