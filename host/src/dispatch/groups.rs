//! Exclusive groups: one answer per event. The plugins of a group take the
//! event in priority order, one at a time; the first that handles it ends
//! the group's turn, and the rest are skipped. A plugin that passes hands
//! the turn to the next. A plugin that fails for good (a dead letter) also
//! ends the turn: it may have sent something before failing, and a second
//! answer is what a group exists to prevent. While a member waits for its
//! retry or its quarantine to end, the members after it wait too.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::inbox::RunRecord;

/// The outcome label of a member skipped because another handled the event.
pub(crate) const SKIPPED: &str = "skipped";
/// The outcome label of a plugin that passed.
const PASSED: &str = "passed";
/// The outcome label of a plugin held back because a human had the
/// conversation (see `dispatch::Hold`).
pub(crate) const HELD_BACK: &str = "paused";

/// `[[exclusive_groups]]`: plugins that answer an event once between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExclusiveGroup {
    /// The group's name, for the operator.
    pub name: String,
    /// Plugin ids, highest priority first.
    pub plugins: Vec<String>,
}

/// An installation's place in an exclusive group: after the members the
/// config's `[[exclusive_groups]]` lists, by `position` (lowest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPlace {
    /// The group's name (one the config defines, or a new one).
    pub name: String,
    /// Its rank among the installations placed in the group.
    #[serde(default)]
    pub position: u32,
}

impl ExclusiveGroup {
    /// `groups` with each of `placed` (an installation's id and place)
    /// joined to its group, after the members listed there; a plugin a
    /// group lists already keeps that place.
    pub(crate) fn with_places<'a>(
        groups: &[ExclusiveGroup],
        placed: impl IntoIterator<Item = (&'a str, &'a GroupPlace)>,
    ) -> Vec<ExclusiveGroup> {
        let mut placed: Vec<_> = placed.into_iter().collect();
        placed.sort_by_key(|(id, place)| (place.position, *id));
        let mut groups = groups.to_vec();
        for (id, place) in placed {
            if groups
                .iter()
                .any(|group| group.plugins.iter().any(|p| p == id))
            {
                continue;
            }
            match groups.iter_mut().find(|group| group.name == place.name) {
                Some(group) => group.plugins.push(id.to_owned()),
                None => groups.push(ExclusiveGroup {
                    name: place.name.clone(),
                    plugins: vec![id.to_owned()],
                }),
            }
        }
        groups
    }

    /// Check `groups` against the configured plugin ids: each member is a
    /// configured plugin, in one group at most, and names are unique.
    pub fn validate<'a>(
        groups: &[ExclusiveGroup],
        plugin_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        let configured: BTreeSet<&str> = plugin_ids.into_iter().collect();
        let mut names = BTreeSet::new();
        let mut grouped = BTreeSet::new();
        for group in groups {
            if !names.insert(group.name.as_str()) {
                return Err(format!("exclusive group `{}` is defined twice", group.name));
            }
            if group.plugins.is_empty() {
                return Err(format!("exclusive group `{}` has no plugins", group.name));
            }
            for plugin in &group.plugins {
                if !configured.contains(plugin.as_str()) {
                    return Err(format!(
                        "exclusive group `{}` names `{plugin}`, which is not a configured plugin",
                        group.name
                    ));
                }
                if !grouped.insert(plugin.as_str()) {
                    return Err(format!(
                        "plugin `{plugin}` is in more than one exclusive group (or twice in `{}`)",
                        group.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Where a group's turn on an event stands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn<'a> {
    /// This member has the turn: it runs (when due), and the members after
    /// it wait.
    Next(&'a str),
    /// `by` ended the turn; these members, not yet finished, are skipped.
    Over { by: &'a str, skip: Vec<&'a str> },
    /// Every member passed (or has finished).
    Done,
}

/// The turn of `members` (the group's plugins subscribed to the event, in
/// priority order) on an event whose runs so far are `runs`.
///
/// A member that ended for good without passing answered the event,
/// wherever it stands: one ahead of it with no record yet (loaded since, or
/// added to the group) is skipped, never run after the answer. Otherwise
/// the first member not finished has the turn; one recorded `skipped` by an
/// answer that no longer stands (it was replayed) gets it back.
pub(crate) fn turn<'a>(members: &[&'a str], runs: &[RunRecord]) -> Turn<'a> {
    let run_of = |member: &str| runs.iter().find(|run| run.plugin == member);
    let answered = |member: &&str| {
        run_of(member).is_some_and(|run| {
            run.retry_at_ms.is_none()
                && ![PASSED, SKIPPED, HELD_BACK].contains(&run.outcome.as_str())
        })
    };
    if let Some(by) = members.iter().copied().find(answered) {
        // Not finished, or skipped by an earlier answer (a replay's new
        // answer names who answered now).
        let skip = members
            .iter()
            .copied()
            .filter(|member| {
                *member != by
                    && (!crate::inbox::is_done_for(runs, member) || was_skipped(runs, member))
            })
            .collect();
        return Turn::Over { by, skip };
    }
    for member in members {
        match run_of(member) {
            // Held back by a pause: it did not answer, so the turn goes on.
            Some(run)
                if run.retry_at_ms.is_none()
                    && [PASSED, HELD_BACK].contains(&run.outcome.as_str()) =>
            {
                continue;
            }
            _ => return Turn::Next(member),
        }
    }
    Turn::Done
}

/// Whether `plugin`'s run on the event is a skip (another member answered).
pub(crate) fn was_skipped(runs: &[RunRecord], plugin: &str) -> bool {
    skip_of(runs, plugin).is_some()
}

/// The member whose answer `plugin` was skipped for in `group`, if that is
/// what its record says (a skip by a hold, say, names no one).
fn skip_of<'r>(runs: &'r [RunRecord], plugin: &str) -> Option<&'r RunRecord> {
    runs.iter()
        .find(|run| run.plugin == plugin && run.outcome == SKIPPED && run.retry_at_ms.is_none())
}

/// Whether `plugin` was skipped in `group` for an answer that no longer
/// stands: the member named as answering has since passed (an operator
/// replayed it, fixed). Only then may `plugin` have its turn back; while
/// the answer stands, waits to be tried again, was held back by a pause,
/// or its record is gone, never.
pub(crate) fn answer_taken_back(runs: &[RunRecord], plugin: &str, group: &str) -> bool {
    let Some(skip) = skip_of(runs, plugin) else {
        return false;
    };
    let Some(by) = skip
        .detail
        .strip_prefix("exclusive group `")
        .and_then(|rest| rest.strip_prefix(group))
        .and_then(|rest| rest.strip_prefix("`: `"))
        .and_then(|rest| rest.strip_suffix(ANSWERED))
    else {
        return false;
    };
    runs.iter()
        .any(|run| run.plugin == by && run.outcome == PASSED && run.retry_at_ms.is_none())
}

/// How a skip's detail ends, after the member that answered.
const ANSWERED: &str = "` answered the event";

/// The record of `plugin`, skipped in `group` because `by` ended the turn.
pub(crate) fn skipped(plugin: &str, group: &str, by: &str) -> RunRecord {
    RunRecord::finished(
        plugin,
        SKIPPED,
        &format!("exclusive group `{group}`: `{by}{ANSWERED}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(runs: &[(&str, &str, Option<u64>)]) -> Vec<RunRecord> {
        runs.iter()
            .map(|(plugin, outcome, retry_at_ms)| RunRecord {
                retry_at_ms: *retry_at_ms,
                ..RunRecord::finished(plugin, outcome, "")
            })
            .collect()
    }

    const GROUP: &[&str] = &["a", "b", "c"];

    #[test]
    fn the_first_member_has_the_turn_until_it_runs() {
        assert_eq!(turn(GROUP, &pending(&[])), Turn::Next("a"));
        assert_eq!(
            turn(GROUP, &pending(&[("a", "plugin-error", Some(5))])),
            Turn::Next("a"),
            "a retry to come keeps the turn"
        );
    }

    #[test]
    fn passing_hands_the_turn_on() {
        assert_eq!(
            turn(GROUP, &pending(&[("a", "passed", None)])),
            Turn::Next("b")
        );
        let all_passed = [
            ("a", "passed", None),
            ("b", "passed", None),
            ("c", "passed", None),
        ];
        assert_eq!(turn(GROUP, &pending(&all_passed)), Turn::Done);
    }

    #[test]
    fn handling_or_failing_for_good_ends_the_turn() {
        for outcome in ["ok", "plugin-error", "trap"] {
            assert_eq!(
                turn(
                    GROUP,
                    &pending(&[("a", "passed", None), ("b", outcome, None)])
                ),
                Turn::Over {
                    by: "b",
                    skip: vec!["c"]
                },
                "{outcome}"
            );
        }
        let recorded = [
            ("a", "ok", None),
            ("b", SKIPPED, None),
            ("c", SKIPPED, None),
            ("d", "passed", None),
        ];
        assert_eq!(
            turn(&["a", "b", "c", "d"], &pending(&recorded)),
            Turn::Over {
                by: "a",
                skip: vec!["b", "c"]
            },
            "the skipped are named again (the dispatcher writes only records that changed)"
        );
    }

    #[test]
    fn a_member_held_back_by_a_pause_did_not_answer() {
        let held = [("a", HELD_BACK, None), ("b", "plugin-error", Some(9))];
        assert_eq!(turn(GROUP, &pending(&held)), Turn::Next("b"), "b's retry");
    }

    #[test]
    fn a_member_new_to_the_event_never_runs_after_another_answered() {
        assert_eq!(
            turn(GROUP, &pending(&[("b", "ok", None)])),
            Turn::Over {
                by: "b",
                skip: vec!["a", "c"]
            },
            "a loaded (or joined the group) after b answered"
        );
    }

    #[test]
    fn a_replayed_answer_gives_the_skipped_their_turn_back() {
        let replayed = [("a", "passed", None), ("b", SKIPPED, None)];
        assert_eq!(turn(GROUP, &pending(&replayed)), Turn::Next("b"));
        let force_replayed = [("a", "ok", Some(1)), ("b", SKIPPED, Some(1))];
        assert_eq!(turn(GROUP, &pending(&force_replayed)), Turn::Next("a"));
    }

    #[test]
    fn a_skip_comes_back_only_when_the_answer_it_names_is_taken_back() {
        let mut runs = vec![
            RunRecord::finished("a", "ok", ""),
            skipped("b", "g", "a"),
            RunRecord::finished("c", SKIPPED, "the timer was cancelled"),
        ];
        assert!(!answer_taken_back(&runs, "b", "g"), "a's answer stands");
        assert!(!answer_taken_back(&runs, "b", "other"), "another group's");
        assert!(!answer_taken_back(&runs, "c", "g"), "no answer named");
        runs[0] = RunRecord::finished("a", HELD_BACK, "");
        assert!(
            !answer_taken_back(&runs, "b", "g"),
            "a pause takes nothing back"
        );
        runs[0] = RunRecord::finished("a", "plugin-error", "");
        runs[0].retry_at_ms = Some(1);
        assert!(!answer_taken_back(&runs, "b", "g"), "a waits to run again");
        runs[0] = RunRecord::finished("a", PASSED, "");
        assert!(answer_taken_back(&runs, "b", "g"), "a passed on replay");
    }

    #[test]
    fn a_member_in_two_groups_or_unknown_is_refused() {
        let group = |name: &str, plugins: &[&str]| ExclusiveGroup {
            name: name.into(),
            plugins: plugins.iter().map(|p| (*p).to_owned()).collect(),
        };
        let ids = ["a", "b", "c"];
        assert!(ExclusiveGroup::validate(&[group("g", &["a", "b"])], ids).is_ok());
        assert!(
            ExclusiveGroup::validate(&[group("g", &["a", "b"]), group("h", &["b"])], ids).is_err()
        );
        assert!(ExclusiveGroup::validate(&[group("g", &["a", "a"])], ids).is_err());
        assert!(ExclusiveGroup::validate(&[group("g", &["z"])], ids).is_err());
        assert!(ExclusiveGroup::validate(&[group("g", &[])], ids).is_err());
        assert!(ExclusiveGroup::validate(&[group("g", &["a"]), group("g", &["b"])], ids).is_err());
    }
}
