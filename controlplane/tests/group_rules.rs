//! Supervision group rules (docs/design.md §3.1) as a table (docs/design.md §9.12): each row sets
//! up a directory, applies one operation and expects success or one stable error code; every
//! refused operation must leave the directory equal to its snapshot from before.

use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use controlplane::domain::groups::{
    Availability, Directory, GroupError, GroupEvent, GroupId, GroupKind, MEMBERS_PER_GROUP_MAX,
    MemberFilter, Presence, Rights, TAKEN_CALLS_REMEMBERED_MAX, UserId,
};
use controlplane::http::views::center::MemberView;

fn u(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn g(s: &str) -> GroupId {
    GroupId::parse(s).unwrap()
}

const ADMIN: Rights = Rights { group_admin: true };
const NO_ADMIN: Rights = Rights { group_admin: false };

/// The directory every row starts from:
/// - `std` (standard, "Front desk"): supervisor sup-1; members alice and sup-2 (a supervisor
///   elsewhere, supervised here), both logged in (standard members always are).
/// - `aid` (mutual aid, lock last member): supervisors sup-1 and sup-2; members bob (can leave,
///   joined), carol (can leave, logged out), dave (cannot leave, hence logged in).
/// - `other` (mutual aid, no lock): supervisor sup-3; member erin (joined).
fn fixture() -> Directory {
    let mut d = Directory::new();
    for (id, name, number) in [
        ("sup-1", "Sam Super", "1001"),
        ("sup-2", "Sue Second", "1002"),
        ("sup-3", "Oscar Other", "1003"),
        ("alice", "Alice Martin", "+33 1 55 00 11"),
        ("bob", "Bob Durand", "2002"),
        ("carol", "Carol Petit", "2003"),
        ("dave", "Dave Leroy", "2004"),
        ("erin", "Erin Blanc", "2005"),
    ] {
        d.upsert_user(u(id), name, Some(number)).unwrap();
        d.report_presence(&u(id), Presence::Online).unwrap();
    }
    d.create_group(
        g("std"),
        "Front desk",
        GroupKind::Standard,
        false,
        u("sup-1"),
    )
    .unwrap();
    d.add_member(&g("std"), u("alice"), false).unwrap();
    d.add_member(&g("std"), u("sup-2"), false).unwrap();

    d.create_group(
        g("aid"),
        "Mutual aid",
        GroupKind::MutualAid,
        true,
        u("sup-1"),
    )
    .unwrap();
    d.add_supervisor(&g("aid"), u("sup-2")).unwrap();
    d.add_member(&g("aid"), u("bob"), true).unwrap();
    d.add_member(&g("aid"), u("carol"), true).unwrap();
    d.add_member(&g("aid"), u("dave"), false).unwrap();
    d.join(&g("aid"), &u("bob")).unwrap();

    d.create_group(g("other"), "Other", GroupKind::MutualAid, false, u("sup-3"))
        .unwrap();
    d.add_member(&g("other"), u("erin"), true).unwrap();
    d.join(&g("other"), &u("erin")).unwrap();
    d
}

/// A mutual-aid group `lock` (lock last member) with bob and carol, bob alone logged in.
fn with_lock_group(d: &mut Directory) {
    d.create_group(g("lock"), "Locked", GroupKind::MutualAid, true, u("sup-1"))
        .unwrap();
    d.add_member(&g("lock"), u("bob"), true).unwrap();
    d.add_member(&g("lock"), u("carol"), true).unwrap();
    d.join(&g("lock"), &u("bob")).unwrap();
}

fn logged_in(d: &Directory, group: &str, user: &str) -> bool {
    d.group(&g(group)).unwrap().members()[&u(user)].logged_in
}

type Op = fn(&mut Directory) -> Result<Vec<GroupEvent>, GroupError>;

struct Row {
    rule: &'static str,
    setup: fn(&mut Directory),
    op: Op,
    /// `"ok"` or the expected error code.
    expect: &'static str,
    /// Checked after a successful op.
    then: fn(&Directory, &[GroupEvent]),
}

fn none(_: &mut Directory) {}
fn nothing(_: &Directory, _: &[GroupEvent]) {}

fn rows() -> Vec<Row> {
    vec![
        // ----- standard groups -----
        Row {
            rule: "a standard member cannot leave",
            setup: none,
            op: |d| d.leave(&g("std"), &u("alice")),
            expect: "standard_group",
            then: nothing,
        },
        Row {
            rule: "a standard member cannot join either",
            setup: |d| {
                d.force_logoff(&g("std"), &u("sup-1"), ADMIN, &u("alice"))
                    .unwrap();
            },
            op: |d| d.join(&g("std"), &u("alice")),
            expect: "standard_group",
            then: nothing,
        },
        // ----- mutual aid: join / leave -----
        Row {
            rule: "a mutual-aid member joins",
            setup: none,
            op: |d| d.join(&g("aid"), &u("carol")),
            expect: "ok",
            then: |d, ev| {
                assert!(logged_in(d, "aid", "carol"));
                assert_eq!(
                    ev,
                    [GroupEvent::MemberLoggedIn {
                        group: g("aid"),
                        user: u("carol"),
                        forced_by: None
                    }]
                );
            },
        },
        Row {
            rule: "a mutual-aid member with can_leave leaves",
            setup: none,
            op: |d| d.leave(&g("aid"), &u("bob")),
            expect: "ok",
            then: |d, _| assert!(!logged_in(d, "aid", "bob")),
        },
        Row {
            rule: "can_leave = false: cannot leave",
            setup: none,
            op: |d| d.leave(&g("aid"), &u("dave")),
            expect: "member_cannot_leave",
            then: nothing,
        },
        Row {
            rule: "joining twice",
            setup: none,
            op: |d| d.join(&g("aid"), &u("bob")),
            expect: "already_logged_in",
            then: nothing,
        },
        Row {
            rule: "leaving when logged out",
            setup: none,
            op: |d| d.leave(&g("aid"), &u("carol")),
            expect: "already_logged_out",
            then: nothing,
        },
        Row {
            rule: "a non-member cannot join",
            setup: none,
            op: |d| d.join(&g("aid"), &u("erin")),
            expect: "not_a_member",
            then: nothing,
        },
        Row {
            rule: "unknown group",
            setup: none,
            op: |d| d.join(&g("nope"), &u("bob")),
            expect: "unknown_group",
            then: nothing,
        },
        // ----- lock last member -----
        Row {
            rule: "lock last member, 1 logged in: cannot leave",
            setup: with_lock_group,
            op: |d| d.leave(&g("lock"), &u("bob")),
            expect: "last_member_locked",
            then: nothing,
        },
        Row {
            rule: "lock last member, 2 logged in: one leaves, then the other cannot",
            setup: |d| {
                with_lock_group(d);
                d.join(&g("lock"), &u("carol")).unwrap();
            },
            op: |d| d.leave(&g("lock"), &u("bob")),
            expect: "ok",
            then: |d, _| {
                let mut d = d.clone();
                assert_eq!(
                    d.leave(&g("lock"), &u("carol")).unwrap_err().code(),
                    "last_member_locked"
                );
            },
        },
        Row {
            rule: "without the lock, the last member may leave",
            setup: |d| {
                with_lock_group(d);
                d.set_lock_last_member(&g("lock"), false).unwrap();
            },
            op: |d| d.leave(&g("lock"), &u("bob")),
            expect: "ok",
            then: |d, _| assert_eq!(d.group(&g("lock")).unwrap().logged_in_count(), 0),
        },
        Row {
            rule: "lock last member also holds against a forced logoff",
            setup: with_lock_group,
            op: |d| d.force_logoff(&g("lock"), &u("sup-1"), ADMIN, &u("bob")),
            expect: "last_member_locked",
            then: nothing,
        },
        // ----- forced logon / logoff -----
        Row {
            rule: "forced logon with the admin right",
            setup: none,
            op: |d| d.force_logon(&g("aid"), &u("sup-2"), ADMIN, &u("carol")),
            expect: "ok",
            then: |d, ev| {
                assert!(logged_in(d, "aid", "carol"));
                assert_eq!(
                    ev,
                    [GroupEvent::MemberLoggedIn {
                        group: g("aid"),
                        user: u("carol"),
                        forced_by: Some(u("sup-2"))
                    }]
                );
            },
        },
        Row {
            rule: "forced logon without the admin right",
            setup: none,
            op: |d| d.force_logon(&g("aid"), &u("sup-2"), NO_ADMIN, &u("carol")),
            expect: "admin_right_required",
            then: nothing,
        },
        Row {
            rule: "forced logoff with the admin right",
            setup: none,
            op: |d| d.force_logoff(&g("aid"), &u("sup-1"), ADMIN, &u("bob")),
            expect: "ok",
            then: |d, ev| {
                assert!(!logged_in(d, "aid", "bob"));
                assert!(matches!(
                    &ev[0],
                    GroupEvent::MemberLoggedOut { forced_by: Some(s), .. } if *s == u("sup-1")
                ));
            },
        },
        Row {
            rule: "forced logoff without the admin right",
            setup: none,
            op: |d| d.force_logoff(&g("aid"), &u("sup-1"), NO_ADMIN, &u("bob")),
            expect: "admin_right_required",
            then: nothing,
        },
        Row {
            rule: "forced logoff overrides can_leave = false",
            setup: none,
            op: |d| d.force_logoff(&g("aid"), &u("sup-1"), ADMIN, &u("dave")),
            expect: "ok",
            then: |d, _| assert!(!logged_in(d, "aid", "dave")),
        },
        Row {
            rule: "forced logoff in a standard group",
            setup: none,
            op: |d| d.force_logoff(&g("std"), &u("sup-1"), ADMIN, &u("alice")),
            expect: "ok",
            then: |d, _| assert!(!logged_in(d, "std", "alice")),
        },
        Row {
            rule: "forced logon of a member already in",
            setup: none,
            op: |d| d.force_logon(&g("aid"), &u("sup-1"), ADMIN, &u("bob")),
            expect: "already_logged_in",
            then: nothing,
        },
        Row {
            rule: "forced logoff by a supervisor of another group",
            setup: none,
            op: |d| d.force_logoff(&g("aid"), &u("sup-3"), ADMIN, &u("bob")),
            expect: "not_your_group",
            then: nothing,
        },
        Row {
            rule: "forced logon of someone who is not a member of the group",
            setup: none,
            op: |d| d.force_logon(&g("aid"), &u("sup-1"), ADMIN, &u("erin")),
            expect: "not_a_member",
            then: nothing,
        },
        Row {
            rule: "forced logoff of a member already out",
            setup: none,
            op: |d| d.force_logoff(&g("aid"), &u("sup-1"), ADMIN, &u("carol")),
            expect: "already_logged_out",
            then: nothing,
        },
        Row {
            rule: "a non-member cannot leave",
            setup: none,
            op: |d| d.leave(&g("aid"), &u("erin")),
            expect: "not_a_member",
            then: nothing,
        },
        // ----- the company admin's forced logon / logoff -----
        Row {
            rule: "the company admin logs a member in",
            setup: none,
            op: |d| d.admin_set_logged_in(&g("aid"), &u("carol"), true, &u("admin")),
            expect: "ok",
            then: |d, ev| {
                assert!(logged_in(d, "aid", "carol"));
                assert_eq!(
                    ev,
                    [GroupEvent::MemberLoggedIn {
                        group: g("aid"),
                        user: u("carol"),
                        forced_by: Some(u("admin"))
                    }]
                );
            },
        },
        Row {
            rule: "the company admin logs in a member already in",
            setup: none,
            op: |d| d.admin_set_logged_in(&g("aid"), &u("bob"), true, &u("admin")),
            expect: "already_logged_in",
            then: nothing,
        },
        Row {
            rule: "lock last member also holds against the company admin",
            setup: with_lock_group,
            op: |d| d.admin_set_logged_in(&g("lock"), &u("bob"), false, &u("admin")),
            expect: "last_member_locked",
            then: nothing,
        },
        Row {
            rule: "the company admin forces a logoff in any group",
            setup: none,
            op: |d| d.admin_set_logged_in(&g("other"), &u("erin"), false, &u("admin")),
            expect: "ok",
            then: |d, _| assert!(!logged_in(d, "other", "erin")),
        },
        Row {
            rule: "the company admin forces someone who is not a member",
            setup: none,
            op: |d| d.admin_set_logged_in(&g("other"), &u("bob"), true, &u("admin")),
            expect: "not_a_member",
            then: nothing,
        },
        // ----- supervisors -----
        Row {
            rule: "the last supervisor cannot be removed",
            setup: none,
            op: |d| d.remove_supervisor(&g("std"), &u("sup-1")),
            expect: "last_supervisor",
            then: nothing,
        },
        Row {
            rule: "a supervisor other than the last can be removed",
            setup: none,
            op: |d| d.remove_supervisor(&g("aid"), &u("sup-2")),
            expect: "ok",
            then: |d, _| {
                assert_eq!(d.group(&g("aid")).unwrap().supervisors().len(), 1);
            },
        },
        Row {
            rule: "removing a non-supervisor",
            setup: none,
            op: |d| d.remove_supervisor(&g("aid"), &u("sup-3")),
            expect: "not_a_supervisor",
            then: nothing,
        },
        Row {
            rule: "a supervisor added twice",
            setup: none,
            op: |d| d.add_supervisor(&g("aid"), u("sup-2")),
            expect: "already_supervisor",
            then: nothing,
        },
        Row {
            rule: "a member added twice",
            setup: none,
            op: |d| d.add_member(&g("aid"), u("bob"), true),
            expect: "already_member",
            then: nothing,
        },
        Row {
            rule: "a group needs a known first supervisor",
            setup: none,
            op: |d| d.create_group(g("new"), "New", GroupKind::Standard, false, u("ghost")),
            expect: "unknown_user",
            then: nothing,
        },
        Row {
            rule: "group ids are unique",
            setup: none,
            op: |d| d.create_group(g("aid"), "Again", GroupKind::Standard, false, u("sup-1")),
            expect: "group_exists",
            then: nothing,
        },
        Row {
            rule: "a group name must not be blank",
            setup: none,
            op: |d| d.create_group(g("new"), "  ", GroupKind::Standard, false, u("sup-1")),
            expect: "invalid_value",
            then: nothing,
        },
        Row {
            rule: "can_leave = false logs a logged-out member in",
            setup: none,
            op: |d| d.set_can_leave(&g("aid"), &u("carol"), false),
            expect: "ok",
            then: |d, ev| {
                assert!(logged_in(d, "aid", "carol"));
                assert_eq!(ev.len(), 2);
            },
        },
        // ----- acting on another group's member -----
        Row {
            rule: "cancel the forwarding of another group's member",
            setup: |d| {
                d.report_forwarding(&u("erin"), Some("0600000000")).unwrap();
            },
            op: |d| d.cancel_forwarding(&u("sup-1"), &u("erin")),
            expect: "not_your_group",
            then: nothing,
        },
        Row {
            rule: "subscribe to another group's member",
            setup: none,
            op: |d| d.subscribe(&u("sup-1"), &u("erin")).map(|_| Vec::new()),
            expect: "not_your_group",
            then: nothing,
        },
        Row {
            rule: "take a call ringing another group's member",
            setup: |d| {
                d.report_ringing(&u("erin"), "call-e", "+33 6 00", false)
                    .unwrap();
            },
            op: |d| d.take_call("call-e", &u("sup-1")),
            expect: "not_your_group",
            then: nothing,
        },
        // ----- take a ringing call -----
        Row {
            rule: "take a ringing business call",
            setup: |d| {
                d.report_ringing(&u("bob"), "call-1", "+33 6 12", false)
                    .unwrap();
            },
            op: |d| d.take_call("call-1", &u("sup-2")),
            expect: "ok",
            then: |d, ev| {
                assert_eq!(
                    ev,
                    [GroupEvent::CallTaken {
                        call_id: "call-1".into(),
                        member: u("bob"),
                        caller: "+33 6 12".into(),
                        taken_by: u("sup-2"),
                    }]
                );
                assert_eq!(
                    d.availability(&g("aid"), &u("bob")),
                    Some(Availability::LoggedIn {
                        offline_warning: false
                    }),
                    "the member's phone stops ringing"
                );
                assert_eq!(d.ringing_call_count(&u("sup-1")), 0);
            },
        },
        Row {
            rule: "take a call someone already took",
            setup: |d| {
                d.report_ringing(&u("bob"), "call-1", "+33 6 12", false)
                    .unwrap();
                d.take_call("call-1", &u("sup-2")).unwrap();
            },
            op: |d| d.take_call("call-1", &u("sup-1")),
            expect: "already_taken",
            then: nothing,
        },
        Row {
            rule: "the winner taking again also conflicts",
            setup: |d| {
                d.report_ringing(&u("bob"), "call-1", "+33 6 12", false)
                    .unwrap();
                d.take_call("call-1", &u("sup-2")).unwrap();
            },
            op: |d| d.take_call("call-1", &u("sup-2")),
            expect: "already_taken",
            then: nothing,
        },
        Row {
            rule: "take a web call",
            setup: |d| {
                d.report_ringing(&u("bob"), "web-1", "visitor", true)
                    .unwrap();
            },
            op: |d| d.take_call("web-1", &u("sup-1")),
            expect: "web_call_not_supervisable",
            then: nothing,
        },
        Row {
            rule: "take a call ringing a member logged out of my groups",
            setup: |d| {
                d.report_ringing(&u("carol"), "call-c", "+33 6 34", false)
                    .unwrap();
            },
            op: |d| d.take_call("call-c", &u("sup-1")),
            expect: "not_your_group",
            then: nothing,
        },
        Row {
            rule: "take an unknown call",
            setup: none,
            op: |d| d.take_call("call-x", &u("sup-1")),
            expect: "unknown_call",
            then: nothing,
        },
        // ----- forwarding -----
        Row {
            rule: "cancel a member's forwarding",
            setup: |d| {
                d.report_forwarding(&u("bob"), Some("0600000000")).unwrap();
            },
            op: |d| d.cancel_forwarding(&u("sup-2"), &u("bob")),
            expect: "ok",
            then: |d, ev| {
                assert_eq!(
                    d.availability(&g("aid"), &u("bob")),
                    Some(Availability::LoggedIn {
                        offline_warning: false
                    })
                );
                assert_eq!(
                    ev,
                    [GroupEvent::ForwardingChanged {
                        user: u("bob"),
                        destination: None,
                        cancelled_by: Some(u("sup-2")),
                    }]
                );
            },
        },
        Row {
            rule: "cancel a forwarding that is not there",
            setup: none,
            op: |d| d.cancel_forwarding(&u("sup-1"), &u("bob")),
            expect: "not_forwarded",
            then: nothing,
        },
        // ----- platform reports -----
        Row {
            rule: "a forwarded phone does not ring",
            setup: |d| {
                d.report_forwarding(&u("bob"), Some("0600000000")).unwrap();
            },
            op: |d| d.report_ringing(&u("bob"), "call-2", "+33 6 99", false),
            expect: "line_busy",
            then: nothing,
        },
        Row {
            rule: "one ringing call per line",
            setup: |d| {
                d.report_ringing(&u("bob"), "call-1", "+33 6 12", false)
                    .unwrap();
            },
            op: |d| d.report_ringing(&u("bob"), "call-2", "+33 6 99", false),
            expect: "line_busy",
            then: nothing,
        },
        Row {
            rule: "a call id rings once",
            setup: |d| {
                d.report_ringing(&u("bob"), "call-1", "+33 6 12", false)
                    .unwrap();
            },
            op: |d| d.report_ringing(&u("carol"), "call-1", "+33 6 12", false),
            expect: "duplicate_call",
            then: nothing,
        },
        Row {
            rule: "ringing ends without a take",
            setup: |d| {
                d.report_ringing(&u("bob"), "call-1", "+33 6 12", false)
                    .unwrap();
            },
            op: |d| d.report_ringing_ended("call-1"),
            expect: "ok",
            then: |d, _| {
                assert_eq!(d.ringing_call_count(&u("sup-1")), 0);
                assert!(matches!(
                    d.availability(&g("aid"), &u("bob")),
                    Some(Availability::LoggedIn { .. })
                ));
            },
        },
        Row {
            rule: "the end of a taken call's ringing is a no-op",
            setup: |d| {
                d.report_ringing(&u("bob"), "call-1", "+33 6 12", false)
                    .unwrap();
                d.take_call("call-1", &u("sup-1")).unwrap();
            },
            op: |d| d.report_ringing_ended("call-1"),
            expect: "ok",
            then: |_, ev| assert!(ev.is_empty()),
        },
        Row {
            rule: "presence of an unknown user",
            setup: none,
            op: |d| d.report_presence(&u("ghost"), Presence::Busy),
            expect: "unknown_user",
            then: nothing,
        },
    ]
}

#[test]
fn every_group_rule() {
    let rows = rows();
    for row in &rows {
        let mut d = fixture();
        (row.setup)(&mut d);
        let before = d.clone();
        match ((row.op)(&mut d), row.expect) {
            (Ok(events), "ok") => (row.then)(&d, &events),
            (Ok(events), code) => panic!("{}: expected {code}, got Ok({events:?})", row.rule),
            (Err(e), "ok") => panic!("{}: refused: {} ({e})", row.rule, e.code()),
            (Err(e), code) => {
                assert_eq!(e.code(), code, "{}: {e}", row.rule);
                assert!(!e.to_string().is_empty());
                assert_eq!(d, before, "{}: a refusal changed the directory", row.rule);
            }
        }
    }
    assert!(rows.len() >= 45, "{} rows", rows.len());
}

#[test]
fn eight_supervisors_race_for_one_call_and_one_wins() {
    let mut d = fixture();
    d.report_ringing(&u("bob"), "call-race", "+33 6 77", false)
        .unwrap();
    let d = Arc::new(Mutex::new(d));
    let start = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (d, start) = (Arc::clone(&d), Arc::clone(&start));
            // Both supervisors of `aid`, four threads each.
            let sup = u(if i % 2 == 0 { "sup-1" } else { "sup-2" });
            thread::spawn(move || {
                start.wait();
                let result = d.lock().unwrap().take_call("call-race", &sup);
                (sup, result)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let winners: Vec<&UserId> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(s, _)| s)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0].clone();
    for (_, r) in &results {
        if let Err(e) = r {
            assert_eq!(
                e,
                &GroupError::AlreadyTaken {
                    call_id: "call-race".into(),
                    taken_by: winner.clone()
                }
            );
        }
    }
}

#[test]
fn member_lists_filters_and_search() {
    let mut d = fixture();
    d.report_ringing(&u("bob"), "call-1", "+33 6 12", false)
        .unwrap();
    d.report_ringing(&u("alice"), "web-1", "visitor", true)
        .unwrap();
    d.report_presence(&u("alice"), Presence::Busy).unwrap();
    d.report_presence(&u("dave"), Presence::Offline).unwrap();
    d.report_forwarding(&u("sup-2"), Some("0611111111"))
        .unwrap();
    let before = d.clone();

    let rows = |sup: &str, filter, search| -> Vec<(String, String, Availability)> {
        d.members_view(&u(sup), filter, search)
            .into_iter()
            .map(|v| (v.group.to_string(), v.user.to_string(), v.availability))
            .collect()
    };
    let logged_in = Availability::LoggedIn {
        offline_warning: false,
    };
    let bob_ringing = Availability::Ringing {
        caller: "+33 6 12".into(),
        call_id: "call-1".into(),
        web: false,
    };
    let alice_ringing = Availability::Ringing {
        caller: "visitor".into(),
        call_id: "web-1".into(),
        web: true,
    };
    let s = String::from;
    // sup-1 supervises aid and std: all their members, by group then user.
    assert_eq!(
        rows("sup-1", MemberFilter::All, None),
        [
            (s("aid"), s("bob"), bob_ringing.clone()),
            (s("aid"), s("carol"), Availability::LoggedOut),
            (
                s("aid"),
                s("dave"),
                Availability::LoggedIn {
                    offline_warning: true
                }
            ),
            (s("std"), s("alice"), alice_ringing.clone()),
            (
                s("std"),
                s("sup-2"),
                Availability::Forwarded {
                    destination: "0611111111".into()
                }
            ),
        ]
    );
    // Ringing only: web calls are shown (flagged), business ones too.
    assert_eq!(
        rows("sup-1", MemberFilter::Ringing, None),
        [
            (s("aid"), s("bob"), bob_ringing.clone()),
            (s("std"), s("alice"), alice_ringing),
        ]
    );
    // sup-2 supervises aid only; sup-3 only other.
    assert_eq!(rows("sup-2", MemberFilter::All, None).len(), 3);
    assert_eq!(
        rows("sup-3", MemberFilter::All, None),
        [(s("other"), s("erin"), logged_in)]
    );
    // Search by name or number, case-insensitive, across the supervisor's groups only.
    assert_eq!(
        rows("sup-1", MemberFilter::All, Some("DURAND")),
        [(s("aid"), s("bob"), bob_ringing)]
    );
    let by_number: Vec<String> = rows("sup-1", MemberFilter::All, Some("200"))
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(by_number, ["bob", "carol", "dave"]);
    assert_eq!(rows("sup-1", MemberFilter::All, Some("55 00")).len(), 1);
    assert_eq!(rows("sup-1", MemberFilter::All, Some("erin")).len(), 0);
    assert_eq!(rows("sup-1", MemberFilter::All, Some("  ")).len(), 5);
    assert_eq!(rows("sup-1", MemberFilter::Ringing, Some("alice")).len(), 1);
    assert_eq!(rows("nobody", MemberFilter::All, None).len(), 0);

    // Presence is shown as reported; a supervisor-member is flagged.
    let views = d.members_view(&u("sup-1"), MemberFilter::All, None);
    assert_eq!(views[3].presence, Presence::Busy);
    assert!(!views[4].is_supervisor, "sup-2 supervises aid, not std");
    let mut with_sup = d.clone();
    with_sup.add_member(&g("aid"), u("sup-2"), true).unwrap();
    let sup2_in_aid = with_sup
        .members_view(&u("sup-1"), MemberFilter::All, Some("Sue"))
        .into_iter()
        .find(|v| v.group == g("aid"))
        .unwrap();
    assert!(sup2_in_aid.is_supervisor, "a supervisor is a full member");
    // As the API renders it.
    let json = serde_json::to_value(MemberView::from(views[0].clone())).unwrap();
    assert_eq!(json["availability"], "ringing");
    assert_eq!(json["call_id"], "call-1");
    assert_eq!(json["web"], false);
    assert_eq!(json["presence"], "online");
    assert_eq!(json["display_name"], "Bob Durand");

    // Supervised ringing calls: business calls only.
    let calls = d.ringing_calls(&u("sup-1"));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].call_id, "call-1");
    assert_eq!(calls[0].member, u("bob"));
    assert_eq!(calls[0].caller, "+33 6 12");
    assert_eq!(calls[0].groups, [g("aid")]);
    assert_eq!(d.ringing_call_count(&u("sup-1")), 1);
    assert_eq!(d.ringing_call_count(&u("sup-2")), 1);
    assert_eq!(d.ringing_call_count(&u("sup-3")), 0);

    assert_eq!(d, before, "views are pure reads");
}

#[test]
fn a_member_of_two_supervised_groups_is_listed_per_group() {
    let mut d = fixture();
    d.add_member(&g("std"), u("carol"), false).unwrap(); // standard: logged in
    d.report_ringing(&u("carol"), "call-c", "+33 6 34", false)
        .unwrap();
    let carol: Vec<_> = d
        .members_view(&u("sup-1"), MemberFilter::All, Some("carol"))
        .into_iter()
        .map(|v| (v.group.to_string(), v.availability))
        .collect();
    assert_eq!(carol.len(), 2);
    assert_eq!(carol[0].1, Availability::LoggedOut, "logged out of aid");
    assert!(matches!(carol[1].1, Availability::Ringing { .. }), "in std");
    // Counted once, in the group where she is logged in.
    let calls = d.ringing_calls(&u("sup-1"));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].groups, [g("std")]);
    // Logged in to std only: sup-2 (aid) sees nothing, and cannot take it.
    assert_eq!(d.ringing_call_count(&u("sup-2")), 0);
    assert_eq!(
        d.take_call("call-c", &u("sup-2")).unwrap_err().code(),
        "not_your_group"
    );
    d.take_call("call-c", &u("sup-1")).unwrap();
}

#[test]
fn offline_warning_follows_presence() {
    let mut d = fixture();
    let bob = || d.availability(&g("aid"), &u("bob"));
    assert_eq!(
        bob(),
        Some(Availability::LoggedIn {
            offline_warning: false
        })
    );
    d.report_presence(&u("bob"), Presence::Offline).unwrap();
    assert_eq!(
        d.availability(&g("aid"), &u("bob")),
        Some(Availability::LoggedIn {
            offline_warning: true
        })
    );
    assert!(
        d.report_presence(&u("bob"), Presence::Offline)
            .unwrap()
            .is_empty()
    );
    d.leave(&g("aid"), &u("bob")).unwrap();
    assert_eq!(
        d.availability(&g("aid"), &u("bob")),
        Some(Availability::LoggedOut)
    );
    assert_eq!(d.availability(&g("aid"), &u("erin")), None);
}

#[test]
fn subscriptions() {
    let mut d = fixture();
    assert_eq!(d.subscribe(&u("sup-1"), &u("bob")), Ok(true));
    assert_eq!(d.subscribe(&u("sup-1"), &u("bob")), Ok(false), "idempotent");
    assert_eq!(d.subscribe(&u("sup-2"), &u("bob")), Ok(true));
    // A logged-out member is still an agent of the group: subscribing is allowed.
    assert_eq!(d.subscribe(&u("sup-2"), &u("carol")), Ok(true));
    assert_eq!(d.subscribers_of(&u("bob")), [u("sup-1"), u("sup-2")]);
    assert_eq!(d.subscribers_of(&u("erin")), Vec::<UserId>::new());

    assert!(d.unsubscribe(&u("sup-1"), &u("bob")));
    assert!(!d.unsubscribe(&u("sup-1"), &u("bob")));
    assert_eq!(d.subscribers_of(&u("bob")), [u("sup-2")]);

    // When sup-2 stops supervising aid, their subscriptions to its members go.
    d.remove_supervisor(&g("aid"), &u("sup-2")).unwrap();
    assert!(d.subscribers_of(&u("bob")).is_empty());
    assert!(d.subscribers_of(&u("carol")).is_empty());
    // Same when the agent leaves the supervisor's groups.
    d.subscribe(&u("sup-1"), &u("bob")).unwrap();
    d.remove_member(&g("aid"), &u("bob")).unwrap();
    assert!(d.subscribers_of(&u("bob")).is_empty());
}

#[test]
fn taken_calls_are_remembered_within_a_bound() {
    let mut d = fixture();
    for i in 0..=TAKEN_CALLS_REMEMBERED_MAX {
        let id = format!("call-{i}");
        d.report_ringing(&u("bob"), &id, "+33 6 12", false).unwrap();
        d.take_call(&id, &u("sup-1")).unwrap();
    }
    // The newest is remembered; the oldest was forgotten.
    let last = format!("call-{TAKEN_CALLS_REMEMBERED_MAX}");
    assert_eq!(
        d.take_call(&last, &u("sup-2")).unwrap_err().code(),
        "already_taken"
    );
    assert_eq!(
        d.take_call("call-0", &u("sup-2")).unwrap_err().code(),
        "unknown_call"
    );
}

#[test]
fn group_size_is_bounded() {
    let mut d = fixture();
    d.create_group(g("big"), "Big", GroupKind::MutualAid, false, u("sup-1"))
        .unwrap();
    for i in 0..MEMBERS_PER_GROUP_MAX {
        let id = u(&format!("m-{i}"));
        d.upsert_user(id.clone(), "Member", Some("3000")).unwrap();
        d.add_member(&g("big"), id, true).unwrap();
    }
    d.upsert_user(u("one-more"), "One more", Some("3001"))
        .unwrap();
    let before = d.clone();
    let e = d.add_member(&g("big"), u("one-more"), true).unwrap_err();
    assert_eq!(e.code(), "limit_reached");
    assert_eq!(d, before);
}

#[test]
fn values_are_validated() {
    let mut d = fixture();
    let before = d.clone();
    for (name, number) in [
        ("", "1"),
        ("Name", " "),
        ("A\u{7}", "1"),
        (&"n".repeat(129), "1"),
    ] {
        let e = d.upsert_user(u("zed"), name, Some(number)).unwrap_err();
        assert_eq!(e.code(), "invalid_value");
    }
    assert_eq!(
        d.report_ringing(&u("bob"), "", "caller", false)
            .unwrap_err()
            .code(),
        "invalid_value"
    );
    assert_eq!(d, before);
    assert!(GroupId::parse("has space").is_err());
}
