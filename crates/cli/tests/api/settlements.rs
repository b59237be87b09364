//! Split bills (create, pay, visibility, validation), plus the pending-transfer accept/cancel
//! roles and the job run history.

use crate::helpers::{Resp, TestApp, TestUser, join_all};
use crate::on_both_backends;
use serde_json::{Value, json};

on_both_backends!(
    an_equal_split_among_three_sums_to_the_total_and_notifies_each_participant,
    the_requesters_own_share_is_paid_at_once,
    paying_the_requesters_own_share_is_paying_twice,
    random_splits_sum_exactly_with_every_share_at_least_one,
    paying_a_share_moves_its_money_once_and_the_last_one_completes_the_settlement,
    paying_a_share_auto_charges_the_shortfall_or_is_insufficient_funds,
    the_same_idempotency_key_on_pay_pays_once,
    ten_concurrent_pays_by_one_participant_pay_once,
    ten_concurrent_auto_charged_pays_by_one_participant_pay_once_and_keep_the_charged_money,
    settlements_are_visible_only_to_their_requester_and_participants,
    settlement_lists_page_by_role_without_skips_or_repeats,
    creating_a_settlement_rejects_bad_input_and_creates_nothing,
    a_hundred_participants_is_the_most_a_settlement_takes,
    pending_transfers_are_accepted_by_the_receiver_and_canceled_by_the_sender_only,
    manual_job_runs_are_recorded_and_bad_runs_are_refused,
);

fn ids(users: &[&TestUser]) -> Vec<String> {
    users.iter().map(|u| u.id.clone()).collect()
}

async fn create(app: &TestApp, requester: &TestUser, total: i64, method: &str, participants: &[&TestUser]) -> Resp {
    let body = json!({"total_amount": total, "method": method, "participant_user_ids": ids(participants)});
    app.post("/v1/settlements", &requester.token, body).await
}

/// Creates a settlement that must succeed and returns it.
async fn settle(app: &TestApp, requester: &TestUser, total: i64, method: &str, participants: &[&TestUser]) -> Value {
    let r = create(app, requester, total, method, participants).await;
    r.assert_status(201).clone()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

async fn pay(app: &TestApp, user: &TestUser, settlement_id: &str) -> Resp {
    app.post(&format!("/v1/settlements/{settlement_id}/pay"), &user.token, json!({}))
        .await
}

async fn pay_keyed(app: &TestApp, user: &TestUser, settlement_id: &str, key: &str) -> Resp {
    app.post_keyed(
        &format!("/v1/settlements/{settlement_id}/pay"),
        &user.token,
        key,
        json!({}),
    )
    .await
}

async fn fetch(app: &TestApp, user: &TestUser, settlement_id: &str) -> Value {
    let r = app.get(&format!("/v1/settlements/{settlement_id}"), &user.token).await;
    r.assert_status(200).clone()
}

/// The share of `user` in a settlement (exactly one).
#[track_caller]
fn share<'a>(settlement: &'a Value, user: &TestUser) -> &'a Value {
    let mine: Vec<_> = settlement["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .filter(|s| s["user_id"] == json!(user.id))
        .collect();
    assert_eq!(mine.len(), 1, "one share for {}: {settlement}", user.name);
    mine[0]
}

fn amounts(settlement: &Value) -> Vec<i64> {
    settlement["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .map(|s| s["amount"].as_i64().expect("an integer amount"))
        .collect()
}

/// Every share's user id, sorted.
fn share_users(settlement: &Value) -> Vec<String> {
    let mut users: Vec<String> = settlement["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .map(|s| s["user_id"].as_str().expect("a user id").to_owned())
        .collect();
    users.sort();
    users
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Ids of the caller's settlements in `role`, following every cursor with pages of `limit`.
async fn list_all(app: &TestApp, user: &TestUser, role: &str, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/v1/settlements?role={role}&limit={limit}&cursor={c}"),
            None => format!("/v1/settlements?role={role}&limit={limit}"),
        };
        let page = app.get(&path, &user.token).await;
        let page = page.assert_status(200).clone();
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= limit as usize, "page over the limit: {page}");
        seen.extend(items.iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return seen,
        }
    }
    panic!("the {role} list of {} never ends", user.name);
}

async fn clock_now(app: &TestApp) -> jiff::Timestamp {
    let clock = app.admin_get("/v1/admin/clock").await;
    clock.assert_status(200)["now"]
        .as_str()
        .expect("now")
        .parse()
        .expect("now is a timestamp")
}

#[track_caller]
fn timestamp(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("not an RFC 3339 time {v}: {e}"))
}

// --- creating ------------------------------------------------------------------------------

async fn an_equal_split_among_three_sums_to_the_total_and_notifies_each_participant(app: TestApp) {
    let kim = app.user("Kim").await;
    let (a, b, c) = (app.user("Ahn").await, app.user("Baek").await, app.user("Cho").await);
    let before = app.totals().await;
    let body = json!({"total_amount": 20_000, "method": "equal", "participant_user_ids": ids(&[&a, &b, &c]), "memo": "dinner"});
    let created = app.post("/v1/settlements", &kim.token, body).await;
    let s = created.assert_status(201).clone();
    assert_eq!(s["requester_user_id"], json!(kim.id));
    assert_eq!(s["total_amount"], json!(20_000));
    assert_eq!(s["method"], json!("equal"));
    assert_eq!(s["memo"], json!("dinner"));
    assert_eq!(s["status"], json!("open"));
    timestamp(&s["created_at"]);
    assert_eq!(share_users(&s), sorted(ids(&[&a, &b, &c])));
    // Equal: differ by at most 1 won; which participant gets the smaller share is not promised.
    let mut split = amounts(&s);
    split.sort();
    assert_eq!(split, vec![6_666, 6_667, 6_667]);
    assert_eq!(split.iter().sum::<i64>(), 20_000);
    for p in [&a, &b, &c] {
        let sh = share(&s, p);
        assert_eq!(
            (sh["status"].clone(), sh["transfer_id"].clone()),
            (json!("requested"), Value::Null)
        );
    }
    // Asking moves no money.
    assert_eq!(app.totals().await, before, "creating a settlement moved money");
    // Everyone involved reads the same settlement.
    let id = id_of(&s);
    for who in [&kim, &a, &b, &c] {
        assert_eq!(fetch(&app, who, &id).await, s, "as seen by {}", who.name);
    }
    // One request notification to each participant, none to the requester.
    for p in [&a, &b, &c] {
        let notes = app.notifications(p, "settlement_requested").await;
        assert_eq!(notes.len(), 1, "{}: {notes:?}", p.name);
        assert_eq!(notes[0]["data"]["settlement_id"], json!(id));
        timestamp(&notes[0]["created_at"]);
    }
    assert_eq!(
        app.notifications(&kim, "settlement_requested").await,
        Vec::<Value>::new()
    );
}

async fn the_requesters_own_share_is_paid_at_once(app: TestApp) {
    let kim = app.user("Kim").await;
    let lee = app.user("Lee").await;
    let park = app.user("Park").await;
    let before = app.totals().await;
    let s = settle(&app, &kim, 30_000, "equal", &[&kim, &lee, &park]).await;
    assert_eq!(amounts(&s), vec![10_000, 10_000, 10_000]);
    let own = share(&s, &kim);
    assert_eq!(
        (own["status"].clone(), own["transfer_id"].clone()),
        (json!("paid"), Value::Null)
    );
    for p in [&lee, &park] {
        assert_eq!(share(&s, p)["status"], json!("requested"));
    }
    assert_eq!(s["status"], json!("open"), "two shares are still unpaid");
    // The requester is not asked to pay themselves, and no money moved for their share.
    assert_eq!(app.notifications(&kim, "settlement_requested").await.len(), 0);
    assert_eq!(app.notifications(&lee, "settlement_requested").await.len(), 1);
    assert_eq!(app.totals().await, before);

    // The requester as the only participant: completed at once, whatever the method.
    for method in ["equal", "random"] {
        let alone = settle(&app, &kim, 5_000, method, &[&kim]).await;
        assert_eq!(alone["status"], json!("completed"), "{method}: {alone}");
        assert_eq!(
            alone["shares"],
            json!([{"user_id": kim.id, "amount": 5_000, "status": "paid", "transfer_id": null}])
        );
        assert_eq!(fetch(&app, &kim, &id_of(&alone)).await["status"], json!("completed"));
    }
    assert_eq!(app.totals().await, before);
    assert_eq!(app.balance(&kim).await, 0);
}

async fn paying_the_requesters_own_share_is_paying_twice(app: TestApp) {
    let kim = app.funded_user("Kim", 50_000).await;
    let lee = app.user("Lee").await;
    let shared = id_of(&settle(&app, &kim, 20_000, "equal", &[&kim, &lee]).await);
    let alone = id_of(&settle(&app, &kim, 5_000, "equal", &[&kim]).await);
    // Their share was marked paid at creation: paying it is paying twice (API.md:
    // `409 invalid_state`), and changes nothing.
    // Regression: the self-transfer check used to run before the already-paid check, so the
    // requester "paying" their own (paid) share got 400 instead of 409.
    for id in [&shared, &alone] {
        let again = app.assert_changes_nothing(pay(&app, &kim, id)).await;
        again.assert_error(409, "invalid_state");
    }
    assert_eq!(app.balance(&kim).await, 50_000);
    let s = fetch(&app, &kim, &shared).await;
    assert_eq!(
        (
            share(&s, &kim)["status"].clone(),
            share(&s, &kim)["transfer_id"].clone()
        ),
        (json!("paid"), Value::Null)
    );
}

async fn random_splits_sum_exactly_with_every_share_at_least_one(app: TestApp) {
    let kim = app.user("Kim").await;
    let mut people = Vec::new();
    for i in 0..4 {
        people.push(app.user(&format!("Friend{i}")).await);
    }
    let refs: Vec<&TestUser> = people.iter().collect();
    let mut splits = Vec::new();
    for _ in 0..5 {
        let s = settle(&app, &kim, 1_000, "random", &refs).await;
        assert_eq!(s["method"], json!("random"));
        assert_eq!(s["status"], json!("open"));
        assert_eq!(share_users(&s), sorted(ids(&refs)));
        let split = amounts(&s);
        assert_eq!(split.iter().sum::<i64>(), 1_000, "{s}");
        assert!(split.iter().all(|&a| a >= 1), "a share under 1 won: {s}");
        splits.push(split);
    }
    // Random shares are not the equal split every time (each time has odds ~1e-8).
    assert!(
        splits.iter().any(|s| s != &vec![250, 250, 250, 250]),
        "five random splits were all equal: {splits:?}"
    );
    // A total of exactly one won per participant leaves one way: all 1.
    for method in ["random", "equal"] {
        let s = settle(&app, &kim, 4, method, &refs).await;
        assert_eq!(amounts(&s), vec![1, 1, 1, 1], "{method}: {s}");
    }
}

// --- paying --------------------------------------------------------------------------------

async fn paying_a_share_moves_its_money_once_and_the_last_one_completes_the_settlement(app: TestApp) {
    let kim = app.user("Kim").await;
    let lee = app.funded_user("Lee", 50_000).await;
    let park = app.funded_user("Park", 50_000).await;
    let s = settle(&app, &kim, 20_001, "equal", &[&lee, &park]).await;
    let id = id_of(&s);
    let lee_share = share(&s, &lee)["amount"].as_i64().unwrap();
    let park_share = share(&s, &park)["amount"].as_i64().unwrap();
    assert_eq!(lee_share + park_share, 20_001);

    let paid = pay(&app, &lee, &id).await;
    let paid = paid.assert_status(200).clone();
    assert_eq!(id_of(&paid), id);
    assert_eq!(paid["status"], json!("open"), "Park has not paid yet");
    let mine = share(&paid, &lee);
    assert_eq!(
        (mine["status"].clone(), mine["amount"].clone()),
        (json!("paid"), json!(lee_share))
    );
    let transfer_id = mine["transfer_id"]
        .as_str()
        .expect("the paying transfer's id")
        .to_owned();
    assert_eq!(
        (
            share(&paid, &park)["status"].clone(),
            share(&paid, &park)["transfer_id"].clone()
        ),
        (json!("requested"), Value::Null)
    );
    assert_eq!(
        fetch(&app, &kim, &id).await,
        paid,
        "the requester sees the same settlement"
    );

    // The share went as a normal immediate transfer to the requester.
    let t = app.get(&format!("/v1/transfers/{transfer_id}"), &lee.token).await;
    let t = t.assert_status(200).clone();
    assert_eq!(t["status"], json!("completed"));
    assert_eq!(t["amount"], json!(lee_share));
    assert_eq!(
        (t["from_user_id"].clone(), t["to_user_id"].clone()),
        (json!(lee.id), json!(kim.id))
    );
    assert_eq!(t["to_account_id"], json!(kim.main_account_id));
    assert_eq!(t["auto_charged"], json!(0));
    let seen_by_kim = app.get(&format!("/v1/transfers/{transfer_id}"), &kim.token).await;
    assert_eq!(seen_by_kim.assert_status(200), &t);
    assert_eq!(app.balance(&lee).await, 50_000 - lee_share);
    assert_eq!(app.balance(&kim).await, lee_share);

    // Paying twice is refused and changes nothing.
    let twice = app.assert_changes_nothing(pay(&app, &lee, &id)).await;
    twice.assert_error(409, "invalid_state");
    assert_eq!(fetch(&app, &lee, &id).await, paid);

    // The requester (not a participant) has no share to pay.
    let requester = app.assert_changes_nothing(pay(&app, &kim, &id)).await;
    assert!(
        [404, 409].contains(&requester.status),
        "the requester paid a share they do not have: {}",
        requester.text
    );

    // The last share completes it.
    let last = pay(&app, &park, &id).await;
    let last = last.assert_status(200).clone();
    assert_eq!(last["status"], json!("completed"));
    for p in [&lee, &park] {
        assert_eq!(share(&last, p)["status"], json!("paid"));
    }
    let park_transfer = share(&last, &park)["transfer_id"].as_str().unwrap().to_owned();
    assert_ne!(park_transfer, transfer_id);
    assert_eq!(share(&last, &lee)["transfer_id"], json!(transfer_id));
    assert_eq!(app.balance(&park).await, 50_000 - park_share);
    assert_eq!(app.balance(&kim).await, 20_001);
    let again = app.assert_changes_nothing(pay(&app, &park, &id)).await;
    again.assert_error(409, "invalid_state");
    assert_eq!(fetch(&app, &kim, &id).await["status"], json!("completed"));
    let incoming = app.get("/v1/transfers?direction=incoming", &kim.token).await;
    assert_eq!(incoming.assert_status(200)["items"].as_array().unwrap().len(), 2);
}

async fn paying_a_share_auto_charges_the_shortfall_or_is_insufficient_funds(app: TestApp) {
    let kim = app.user("Kim").await;
    let lee = app.user_with_bank("Lee").await;
    let s = settle(&app, &kim, 15_001, "equal", &[&lee]).await;
    let paid = pay(&app, &lee, &id_of(&s)).await;
    let paid = paid.assert_status(200).clone();
    assert_eq!(paid["status"], json!("completed"));
    let transfer_id = share(&paid, &lee)["transfer_id"].as_str().unwrap().to_owned();
    let t = app.get(&format!("/v1/transfers/{transfer_id}"), &lee.token).await;
    let t = t.assert_status(200);
    // Short by 15,001: charged in whole 10,000s.
    assert_eq!(
        (t["amount"].clone(), t["auto_charged"].clone()),
        (json!(15_001), json!(20_000))
    );
    assert_eq!(app.balance(&lee).await, 4_999);
    assert_eq!(app.balance(&kim).await, 15_001);
    assert_eq!(app.limit_used(&lee).await, 20_000);

    // No money and no bank account: refused, nothing moves, the share is still owed.
    let park = app.user("Park").await;
    let s = settle(&app, &kim, 1_000, "equal", &[&park, &lee]).await;
    let id = id_of(&s);
    let r = app.assert_changes_nothing(pay(&app, &park, &id)).await;
    r.assert_error(422, "insufficient_funds");
    let after = fetch(&app, &park, &id).await;
    assert_eq!(after, s, "a refused payment changed the settlement");
    assert_eq!(
        (
            share(&after, &park)["status"].clone(),
            share(&after, &park)["transfer_id"].clone()
        ),
        (json!("requested"), Value::Null)
    );
    assert_eq!(app.balance(&kim).await, 15_001);
}

async fn the_same_idempotency_key_on_pay_pays_once(app: TestApp) {
    let kim = app.user("Kim").await;
    let lee = app.funded_user("Lee", 50_000).await;
    let park = app.user("Park").await;
    let s = settle(&app, &kim, 10_000, "equal", &[&lee, &park]).await;
    let id = id_of(&s);
    let first = pay_keyed(&app, &lee, &id, "split-dinner-1").await;
    let first = first.assert_status(200).clone();
    let second = pay_keyed(&app, &lee, &id, "split-dinner-1").await;
    assert_eq!(second.assert_status(200), &first, "a replay answers the first response");
    assert_eq!(app.balance(&lee).await, 45_000);
    assert_eq!(app.balance(&kim).await, 5_000);
    let sent = app.get("/v1/transfers?direction=outgoing", &lee.token).await;
    let sent = sent.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(share(&first, &lee)["transfer_id"], sent[0]["id"]);
    // A new key is a new request: the share is paid already.
    let other = app
        .assert_changes_nothing(pay_keyed(&app, &lee, &id, "split-dinner-2"))
        .await;
    other.assert_error(409, "invalid_state");
}

async fn ten_concurrent_pays_by_one_participant_pay_once(app: TestApp) {
    let kim = app.user("Kim").await;
    // Enough money for every attempt: only the share's state can refuse them.
    let lee = app.funded_user("Lee", 200_000).await;
    let park = app.user("Park").await;
    let s = settle(&app, &kim, 20_000, "equal", &[&lee, &park]).await;
    let id = id_of(&s);
    let pays = (0..10).map(|i| {
        let (app, lee, id) = (app.clone(), lee.clone(), id.clone());
        async move { pay_keyed(&app, &lee, &id, &format!("race-{i}")).await }
    });
    let results = join_all(pays).await;
    let ok: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.status != 200) {
        // The payer has the money for each attempt: a loser can only find the share paid.
        r.assert_error(409, "invalid_state");
    }
    let paid = ok[0].body.clone();
    assert_eq!(share(&paid, &lee)["status"], json!("paid"));
    assert_eq!(app.balance(&lee).await, 190_000);
    assert_eq!(app.balance(&kim).await, 10_000);
    let sent = app.get("/v1/transfers?direction=outgoing", &lee.token).await;
    let sent = sent.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let now = fetch(&app, &kim, &id).await;
    assert_eq!(share(&now, &lee)["transfer_id"], sent[0]["id"]);
    assert_eq!(now["status"], json!("open"));
}

async fn ten_concurrent_auto_charged_pays_by_one_participant_pay_once_and_keep_the_charged_money(app: TestApp) {
    let kim = app.user("Kim").await;
    // Nothing in the account: every attempt that gets as far as the bank auto-charges 20,000.
    let lee = app.user_with_bank("Lee").await;
    let s = settle(&app, &kim, 15_001, "equal", &[&lee]).await;
    let id = id_of(&s);
    // A slow bank: every attempt finds the share unpaid and reaches the bank before the
    // first one completes.
    app.set_bank_sim(json!({"latency_ms": 300})).await;
    let pays = (0..10).map(|i| {
        let (app, lee, id) = (app.clone(), lee.clone(), id.clone());
        async move { pay_keyed(&app, &lee, &id, &format!("race-{i}")).await }
    });
    let results = join_all(pays).await;
    let ok: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 409, "{}", r.text);
        assert!(["invalid_state", "conflict"].contains(&r.code()), "{}", r.text);
    }
    assert_eq!(ok[0].body["status"], json!("completed"));
    assert_eq!(app.balance(&kim).await, 15_001);
    // Every pull the bank executed is money in Lee's main account (API.md: "If the bank pull
    // succeeded but the transfer can no longer complete ... the charged money stays in the
    // sender's main account as a normal charge, and the error says so"), and counts on the limit.
    // Regression: when racing payers' auto-charges all landed, the losers' "already paid"
    // refusal used to roll back their charges with it (the money surfaced only when recovery
    // ran a minute later). Each landed charge must stand at once, and the answer says so.
    let pulls = app.bank_sim().await["stats"]["pulls_executed"].as_i64().unwrap();
    assert!(pulls >= 1);
    assert_eq!(
        (app.balance(&lee).await, app.limit_used(&lee).await),
        (pulls * 20_000 - 15_001, pulls * 20_000),
        "{pulls} pulls of 20,000 from the bank; answers: {:?}",
        results.iter().map(|r| r.text.as_str()).collect::<Vec<_>>()
    );
    let sent = app.get("/v1/transfers?direction=outgoing", &lee.token).await;
    assert_eq!(sent.assert_status(200)["items"].as_array().unwrap().len(), 1);
}

// --- reading -------------------------------------------------------------------------------

async fn settlements_are_visible_only_to_their_requester_and_participants(app: TestApp) {
    let kim = app.user("Kim").await;
    let lee = app.user("Lee").await;
    let stranger = app.funded_user("Stranger", 50_000).await;
    let s = settle(&app, &kim, 10_000, "equal", &[&lee]).await;
    let id = id_of(&s);
    assert_eq!(fetch(&app, &lee, &id).await, s);
    let seen = app.get(&format!("/v1/settlements/{id}"), &stranger.token).await;
    seen.assert_error(404, "not_found");
    let paid = app.assert_changes_nothing(pay(&app, &stranger, &id)).await;
    paid.assert_error(404, "not_found");
    // The same answers as for an id that does not exist.
    let unknown = uuid::Uuid::now_v7();
    app.get(&format!("/v1/settlements/{unknown}"), &kim.token)
        .await
        .assert_error(404, "not_found");
    app.assert_changes_nothing(pay(&app, &stranger, &unknown.to_string()))
        .await
        .assert_error(404, "not_found");
    assert_eq!(fetch(&app, &kim, &id).await, s, "nothing changed");
    for role in ["requester", "participant"] {
        let list = app.get(&format!("/v1/settlements?role={role}"), &stranger.token).await;
        assert_eq!(list.assert_status(200)["items"], json!([]), "{role}");
    }
    let bad = app.get("/v1/settlements?role=sideways", &kim.token).await;
    bad.assert_error(400, "validation_failed");
}

async fn settlement_lists_page_by_role_without_skips_or_repeats(app: TestApp) {
    let kim = app.user("Kim").await;
    let lee = app.user("Lee").await;
    let park = app.user("Park").await;
    // Kim asks five times (a second apart), Lee once with Kim taking part.
    let mut kims = Vec::new();
    for i in 0..5 {
        let with: Vec<&TestUser> = if i % 2 == 0 { vec![&lee] } else { vec![&lee, &park] };
        kims.push(id_of(&settle(&app, &kim, 1_000 + i, "equal", &with).await));
        app.advance_clock(1).await;
    }
    let lees = id_of(&settle(&app, &lee, 3_000, "random", &[&kim, &park]).await);
    let newest_first: Vec<String> = kims.iter().rev().cloned().collect();

    for limit in [1, 2, 5, 50] {
        assert_eq!(
            list_all(&app, &kim, "requester", limit).await,
            newest_first,
            "limit {limit}"
        );
        assert_eq!(
            list_all(&app, &lee, "participant", limit).await,
            newest_first,
            "limit {limit}"
        );
    }
    assert_eq!(list_all(&app, &kim, "participant", 2).await, vec![lees.clone()]);
    assert_eq!(list_all(&app, &lee, "requester", 2).await, vec![lees.clone()]);
    let mut parks = vec![lees.clone(), kims[3].clone(), kims[1].clone()];
    parks.sort();
    assert_eq!(sorted(list_all(&app, &park, "participant", 1).await), parks);
    assert_eq!(list_all(&app, &park, "requester", 2).await, Vec::<String>::new());

    // Listed items are whole settlements.
    let page = app.get("/v1/settlements?role=participant&limit=1", &kim.token).await;
    let item = page.assert_status(200)["items"][0].clone();
    assert_eq!(item, fetch(&app, &kim, &lees).await);
    for bad in [
        "role=sideways",
        "role=",
        "role=requester&limit=0",
        "role=requester&limit=201",
    ] {
        let r = app.get(&format!("/v1/settlements?{bad}"), &kim.token).await;
        assert_eq!((r.status, r.code()), (400, "validation_failed"), "{bad}: {}", r.text);
    }
}

// --- validation ----------------------------------------------------------------------------

async fn creating_a_settlement_rejects_bad_input_and_creates_nothing(app: TestApp) {
    let kim = app.user("Kim").await;
    let lee = app.user("Lee").await;
    let park = app.user("Park").await;
    let two = ids(&[&lee, &park]);
    let many: Vec<String> = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let cases = vec![
        (
            "no participants",
            json!({"total_amount": 1_000, "method": "equal", "participant_user_ids": []}),
        ),
        (
            "101 participants",
            json!({"total_amount": 1_000, "method": "equal", "participant_user_ids": many}),
        ),
        (
            "a participant twice",
            json!({"total_amount": 1_000, "method": "equal", "participant_user_ids": [lee.id, park.id, lee.id]}),
        ),
        (
            "total under one won per participant",
            json!({"total_amount": 1, "method": "random", "participant_user_ids": two}),
        ),
        (
            "total 0",
            json!({"total_amount": 0, "method": "equal", "participant_user_ids": two}),
        ),
        (
            "total -1",
            json!({"total_amount": -1, "method": "equal", "participant_user_ids": two}),
        ),
        (
            "total over 1,000,000,000,000",
            json!({"total_amount": 1_000_000_000_001_i64, "method": "equal", "participant_user_ids": two}),
        ),
        (
            "total 1.5",
            json!({"total_amount": 1.5, "method": "equal", "participant_user_ids": two}),
        ),
        ("total missing", json!({"method": "equal", "participant_user_ids": two})),
        (
            "method third",
            json!({"total_amount": 1_000, "method": "third", "participant_user_ids": two}),
        ),
        (
            "method missing",
            json!({"total_amount": 1_000, "participant_user_ids": two}),
        ),
        (
            "an unknown field",
            json!({"total_amount": 1_000, "method": "equal", "participant_user_ids": two, "tip": 100}),
        ),
        (
            "a malformed participant id",
            json!({"total_amount": 1_000, "method": "equal", "participant_user_ids": [lee.id, "not-a-uuid"]}),
        ),
        (
            "participants not a list",
            json!({"total_amount": 1_000, "method": "equal", "participant_user_ids": lee.id}),
        ),
        (
            "participants missing",
            json!({"total_amount": 1_000, "method": "equal"}),
        ),
    ];
    for (case, body) in cases {
        let r = app
            .assert_changes_nothing(app.post("/v1/settlements", &kim.token, body))
            .await;
        assert_eq!((r.status, r.code()), (400, "validation_failed"), "{case}: {}", r.text);
        r.assert_error(400, "validation_failed");
    }
    // A well-formed id of no user: not found, even next to a real participant.
    let ghost = uuid::Uuid::now_v7().to_string();
    let body = json!({"total_amount": 1_000, "method": "equal", "participant_user_ids": [lee.id, ghost]});
    let r = app
        .assert_changes_nothing(app.post("/v1/settlements", &kim.token, body))
        .await;
    r.assert_error(404, "not_found");

    // Nothing was created: no settlement listed, nobody asked to pay.
    for who in [&kim, &lee, &park] {
        for role in ["requester", "participant"] {
            assert_eq!(
                list_all(&app, who, role, 50).await,
                Vec::<String>::new(),
                "{} {role}",
                who.name
            );
        }
        assert_eq!(app.notifications(who, "settlement_requested").await.len(), 0);
    }
    // The same request, well-formed, goes through.
    let ok = create(&app, &kim, 1_000, "equal", &[&lee, &park]).await;
    assert_eq!(amounts(ok.assert_status(201)), vec![500, 500]);
}

async fn a_hundred_participants_is_the_most_a_settlement_takes(app: TestApp) {
    let kim = app.user("Kim").await;
    let people = join_all((0..100).map(|i| {
        let app = app.clone();
        async move { app.user(&format!("Guest{i}")).await }
    }))
    .await;
    let refs: Vec<&TestUser> = people.iter().collect();
    let s = settle(&app, &kim, 100, "equal", &refs).await;
    assert_eq!(amounts(&s), vec![1; 100]);
    assert_eq!(share_users(&s), sorted(ids(&refs)));
    let s = settle(&app, &kim, 1_000_000, "random", &refs).await;
    let split = amounts(&s);
    assert_eq!((split.len(), split.iter().sum::<i64>()), (100, 1_000_000));
    assert!(split.iter().all(|&a| a >= 1), "{split:?}");
    assert_eq!(app.notifications(&people[99], "settlement_requested").await.len(), 2);
}

// --- pending transfers ---------------------------------------------------------------------

async fn pending_transfers_are_accepted_by_the_receiver_and_canceled_by_the_sender_only(app: TestApp) {
    let kim = app.funded_user("Kim", 50_000).await;
    let lee = app.user("Lee").await;
    let stranger = app.funded_user("Stranger", 1_000).await;
    let sent = app.pending_transfer(&kim, &lee, 10_000).await;
    let sent = sent.assert_status(201).clone();
    assert_eq!(sent["status"], json!("pending"));
    assert_eq!(sent["resolved_at"], Value::Null);
    let id = id_of(&sent);
    let held = app.account(&kim, &kim.main_account_id).await;
    assert_eq!(
        (
            held["balance"].clone(),
            held["pending_out"].clone(),
            held["available"].clone()
        ),
        (json!(50_000), json!(10_000), json!(40_000))
    );

    // The other party: forbidden; not a party: not_found. None of them changes anything.
    let r = app.assert_changes_nothing(app.accept(&kim, &id)).await;
    r.assert_error(403, "forbidden");
    let r = app.assert_changes_nothing(app.cancel(&lee, &id)).await;
    r.assert_error(403, "forbidden");
    let r = app.assert_changes_nothing(app.accept(&stranger, &id)).await;
    r.assert_error(404, "not_found");
    let r = app.assert_changes_nothing(app.cancel(&stranger, &id)).await;
    r.assert_error(404, "not_found");
    app.get(&format!("/v1/transfers/{id}"), &stranger.token)
        .await
        .assert_error(404, "not_found");
    assert_eq!(app.transfer_status(&kim, &id).await, "pending");

    let accepted = app.accept(&lee, &id).await;
    let accepted = accepted.assert_status(200).clone();
    assert_eq!(id_of(&accepted), id);
    assert_eq!(accepted["status"], json!("completed"));
    assert!(timestamp(&accepted["resolved_at"]) >= timestamp(&accepted["created_at"]));
    assert_eq!(accepted["amount"], json!(10_000));
    let seen = app.get(&format!("/v1/transfers/{id}"), &kim.token).await;
    assert_eq!(seen.assert_status(200), &accepted);
    assert_eq!(app.balance(&lee).await, 10_000);
    let after = app.account(&kim, &kim.main_account_id).await;
    assert_eq!(
        (
            after["balance"].clone(),
            after["pending_out"].clone(),
            after["available"].clone()
        ),
        (json!(40_000), json!(0), json!(40_000))
    );

    // Accepted is final.
    let r = app.assert_changes_nothing(app.cancel(&kim, &id)).await;
    r.assert_error(409, "invalid_state");
    let r = app.assert_changes_nothing(app.accept(&lee, &id)).await;
    r.assert_error(409, "invalid_state");
    assert_eq!(app.transfer_status(&lee, &id).await, "completed");
}

// --- job run history -----------------------------------------------------------------------

async fn runs(app: &TestApp, query: &str) -> Vec<Value> {
    let page = app.admin_get(&format!("/v1/admin/jobs/runs{query}")).await;
    page.assert_status(200)["items"].as_array().expect("items").clone()
}

async fn manual_job_runs_are_recorded_and_bad_runs_are_refused(app: TestApp) {
    let kim = app.funded_user("Kim", 10_000).await;
    let lee = app.user("Lee").await;
    let t = app.pending_transfer(&kim, &lee, 1_000).await;
    let transfer_id = id_of(t.assert_status(201));
    assert_eq!(
        runs(&app, "").await,
        Vec::<Value>::new(),
        "a fresh server has run nothing"
    );
    app.advance_clock(72 * 3600).await;
    let now = clock_now(&app).await;
    // Tokens last an hour: log in again at the new time.
    let token = app.log_in(&kim.email, "password-123").await;
    let kim = TestUser {
        token: token.assert_status(200)["access_token"].as_str().unwrap().to_owned(),
        ..kim
    };

    let report = app.run_job("pending-expiry").await;
    assert_eq!(report["job"], json!("pending-expiry"));
    assert_eq!(timestamp(&report["at"]), now);
    assert_eq!(report["processed"], json!(1));
    assert_eq!(app.transfer_status(&kim, &transfer_id).await, "expired");

    let listed = runs(&app, "?job=pending-expiry").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let run = &listed[0];
    assert_eq!(run["job"], json!("pending-expiry"));
    assert_eq!(run["trigger"], json!("manual"));
    assert_eq!(timestamp(&run["slot"]), now, "a run by hand is recorded at its `at`");
    // The manual clock stands still: the run starts and finishes at its now.
    assert_eq!(timestamp(&run["started"]), now);
    assert_eq!(timestamp(&run["finished"]), now);
    assert_eq!(run["processed"], json!(1));
    assert_eq!(run["error"], Value::Null);

    // `at` may be now or earlier; each run is listed under its own job, newest first.
    let earlier = now - jiff::SignedDuration::from_hours(1);
    let r = app
        .admin_post(
            "/v1/admin/jobs/pending-reminders/run",
            json!({"at": earlier.to_string()}),
        )
        .await;
    let r = r.assert_status(200);
    assert_eq!(
        (r["job"].clone(), timestamp(&r["at"])),
        (json!("pending-reminders"), earlier)
    );
    let r = app
        .admin_post("/v1/admin/jobs/pending-expiry/run", json!({"at": now.to_string()}))
        .await;
    assert_eq!(r.assert_status(200)["processed"], json!(0), "already expired");
    let expiry_runs = runs(&app, "?job=pending-expiry").await;
    assert_eq!(expiry_runs.len(), 2, "{expiry_runs:?}");
    assert!(expiry_runs.iter().all(|r| r["job"] == json!("pending-expiry")));
    let reminder_runs = runs(&app, "?job=pending-reminders").await;
    assert_eq!(reminder_runs.len(), 1, "{reminder_runs:?}");
    assert_eq!(
        (
            reminder_runs[0]["trigger"].clone(),
            timestamp(&reminder_runs[0]["slot"])
        ),
        (json!("manual"), earlier)
    );
    let all = runs(&app, "").await;
    assert_eq!(all.len(), 3);

    // No future `at`, no unknown job; neither runs nor is recorded.
    let future = now + jiff::SignedDuration::from_hours(1);
    let r = app
        .admin_post("/v1/admin/jobs/pending-expiry/run", json!({"at": future.to_string()}))
        .await;
    r.assert_error(400, "validation_failed");
    let r = app.admin_post("/v1/admin/jobs/no-such-job/run", json!({})).await;
    r.assert_error(404, "not_found");
    assert_eq!(runs(&app, "").await.len(), 3, "a refused run was recorded");
    assert_eq!(runs(&app, "?job=no-such-job").await, Vec::<Value>::new());
}
