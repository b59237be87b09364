//! A group of new payments recorded at once (`Session::insert_accepted_payments`), on SQLite
//! and PostgreSQL: only what may be recorded is, each payment with its event and its key's
//! answer; a key taken meanwhile by another request is never answered under twice (PostgreSQL
//! runs the group once more without it; taken again meanwhile, or twice in the group, it leaves
//! nothing of the group written); the group's statement never reads the keys' table.

use jiff::{SignedDuration, Timestamp};
use minipay_core::business::RegistrationNumber;
use minipay_core::payment::PaymentStatus;
use minipay_core::request::IDEMPOTENCY_KEY_TTL_HOURS;
use minipay_core::{AccountId, BankAccountId, BusinessId, KeyOwner, PaymentId, UserId};
use minipay_store::testing::TestDb;
use minipay_store::{
    AcceptedPayment, BackendKind, NewBankAccount, NewBusinessRecord, NewEvent, NewPayment, NewUser, Store,
    StoreOptions, StoredResponse,
};
use std::time::Duration;

const NOW: &str = "2026-12-01T00:00:00Z";

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use minipay_store::BackendKind;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(BackendKind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(BackendKind::Postgres).await
            }
        }
    )+};
}

on_both_backends!(
    a_group_records_only_what_it_may,
    a_key_taken_meanwhile_is_never_answered_twice,
    a_key_twice_in_one_group_leaves_nothing_written,
    an_expired_key_is_left_out_on_postgres_and_used_afresh_on_sqlite,
);

/// A migrated store on a fresh database, a business, a user with a registered bank account
/// and one without.
struct World {
    db: TestDb,
    store: Store,
    now: Timestamp,
    shop: BusinessId,
    payer: UserId,
    no_bank: UserId,
}

impl World {
    async fn new(backend: BackendKind) -> Option<Self> {
        let db = TestDb::create(backend).await?;
        let store = Store::connect(&db.url, &StoreOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let now: Timestamp = NOW.parse().unwrap();
        let (shop, payer, no_bank) = (BusinessId::new(), UserId::new(), UserId::new());
        let mut tx = store.begin().await.unwrap();
        let registration = RegistrationNumber::with_check_digit("123456789").unwrap();
        tx.insert_business(&NewBusinessRecord {
            id: shop,
            name: "가나마트",
            registration_number: &registration,
            bank_code: "004",
            account_number_masked: "****1234",
            holder_name: "가나마트",
            fintech_use_num: "FIN-SHOP",
            api_key_hash: &[7; 32],
            webhook_url: None,
            webhook_secret: "whsec_test",
            at: now,
        })
        .await
        .unwrap();
        for (user, email) in [(payer, "payer@example.com"), (no_bank, "nobank@example.com")] {
            tx.insert_user(&NewUser {
                id: user,
                email,
                name: "김결제",
                password_hash: "not-a-hash",
                main_account_id: AccountId::new(),
                at: now,
            })
            .await
            .unwrap();
        }
        tx.insert_bank_account(&NewBankAccount {
            id: BankAccountId::new(),
            user_id: payer,
            bank_code: "004",
            account_number_masked: "****5678",
            holder_name: "김결제",
            fintech_use_num: "FIN-PAYER",
            at: now,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        Some(Self {
            db,
            store,
            now,
            shop,
            payer,
            no_bank,
        })
    }

    fn keys_expire_at(&self) -> Timestamp {
        self.now + SignedDuration::from_hours(IDEMPOTENCY_KEY_TTL_HOURS)
    }

    /// Records `group` in a one-statement session, committed unless a key was taken.
    async fn record(&self, group: &[AcceptedPayment<'_>]) -> Option<Vec<PaymentId>> {
        self.record_with_keys_expiring(group, self.keys_expire_at()).await
    }

    /// [`Self::record`], the keys' answers expiring at `keys_expire_at`.
    async fn record_with_keys_expiring(
        &self,
        group: &[AcceptedPayment<'_>],
        keys_expire_at: Timestamp,
    ) -> Option<Vec<PaymentId>> {
        let mut s = self.store.one_statement().await.unwrap();
        let recorded = s
            .insert_accepted_payments(group, self.now, keys_expire_at)
            .await
            .unwrap();
        match recorded {
            Some(_) => s.commit().await.unwrap(),
            None => s.rollback().await.unwrap(),
        }
        recorded
    }

    /// Another request's transaction, not committed, holding the shop's key `key` (its answer
    /// "elsewhere").
    async fn take_key_meanwhile(&self, key: &str) -> minipay_store::Session {
        let elsewhere = StoredResponse {
            status: 202,
            body: "elsewhere".to_owned(),
        };
        let mut meanwhile = self.store.begin().await.unwrap();
        let inserted = meanwhile
            .insert_completed_idempotency_keys(
                &[(KeyOwner::from(self.shop), key, b"fingerprint", &elsewhere)],
                self.now,
                self.keys_expire_at(),
            )
            .await
            .unwrap();
        assert!(inserted);
        meanwhile
    }

    /// The answer stored under the shop's key `key`, if any.
    async fn answer_under(&self, key: &str) -> Option<String> {
        let mut s = self.store.read().await.unwrap();
        let found = s
            .peek_idempotency_keys(&[(KeyOwner::from(self.shop), key, b"fingerprint")], self.now)
            .await
            .unwrap();
        match found.into_iter().next().flatten() {
            Some(minipay_store::Claim::Replay(stored)) => Some(stored.body),
            other => other.map(|c| format!("{c:?}")),
        }
    }

    /// The payloads of the events not yet published, in order.
    async fn events(&self) -> Vec<serde_json::Value> {
        let mut s = self.store.read().await.unwrap();
        let events = s.unpublished_events(100).await.unwrap();
        events
            .into_iter()
            .map(|e| serde_json::from_str(&e.payload).unwrap())
            .collect()
    }

    async fn payment_exists(&self, id: PaymentId) -> bool {
        self.store.read().await.unwrap().payment(id).await.unwrap().is_some()
    }
}

/// One request of a group: its payment by `user` for `order`, its event and its answer.
#[derive(Clone)]
struct Request {
    id: PaymentId,
    user: UserId,
    order: String,
    tran_id: String,
    key: String,
    answer: StoredResponse,
}

impl Request {
    fn new(user: UserId, order: &str, key: &str) -> Self {
        let id = PaymentId::new();
        Self {
            id,
            user,
            order: order.to_owned(),
            tran_id: format!("T{}", id.as_uuid().simple()),
            key: key.to_owned(),
            answer: StoredResponse {
                status: 202,
                body: format!(r#"{{"id":"{id}"}}"#),
            },
        }
    }

    fn row(&self, w: &World) -> AcceptedPayment<'_> {
        AcceptedPayment {
            payment: NewPayment {
                id: self.id,
                business_id: w.shop,
                user_id: self.user,
                order_id: &self.order,
                amount: 10_000,
                description: Some("두 잔"),
                bank_transaction_id: &self.tran_id,
                at: w.now,
            },
            event: NewEvent {
                id: uuid::Uuid::now_v7(),
                subject: "payment.accepted".to_owned(),
                payload: serde_json::json!({ "payment_id": self.id }),
                created_at: w.now,
            },
            key_owner: w.shop.into(),
            key: &self.key,
            fingerprint: b"fingerprint",
            answer: &self.answer,
        }
    }
}

/// Of five requests, two are recorded — each with its event (in the group's order) and its
/// answer — and three are left out with nothing of them written: a key with a record, a user
/// without a bank account, an order id the business has used.
async fn a_group_records_only_what_it_may(backend: BackendKind) {
    let Some(w) = World::new(backend).await else { return };
    let earlier = Request::new(w.payer, "ORDER-EARLIER", "key-earlier");
    assert_eq!(w.record(&[earlier.row(&w)]).await, Some(vec![earlier.id]));

    let first = Request::new(w.payer, "ORDER-1", "key-1");
    let used_key = Request::new(w.payer, "ORDER-2", "key-earlier");
    let no_bank = Request::new(w.no_bank, "ORDER-3", "key-3");
    let used_order = Request::new(w.payer, "ORDER-EARLIER", "key-4");
    let second = Request::new(w.payer, "ORDER-5", "key-5");
    let group = [&first, &used_key, &no_bank, &used_order, &second];
    let rows: Vec<_> = group.iter().map(|r| r.row(&w)).collect();
    let mut recorded = w.record(&rows).await.expect("no key was taken meanwhile");
    recorded.sort();
    let mut expected = vec![first.id, second.id];
    expected.sort();
    assert_eq!(recorded, expected);

    for r in [&used_key, &no_bank, &used_order] {
        assert!(!w.payment_exists(r.id).await, "{} was left out", r.order);
    }
    for r in [&first, &second] {
        let p = w.store.read().await.unwrap().payment(r.id).await.unwrap().unwrap();
        assert_eq!(p.status, PaymentStatus::Accepted);
        assert_eq!((p.refunded_amount, p.amount), (0, 10_000));
        assert_eq!((p.created_at, p.updated_at, p.paid_at), (w.now, w.now, None));
        assert_eq!((p.business_id, p.user_id), (w.shop, w.payer));
        assert_eq!(
            (p.order_id.as_str(), p.description.as_deref()),
            (r.order.as_str(), Some("두 잔"))
        );
        assert_eq!(p.bank_transaction_id, r.tran_id);
        assert_eq!((p.fintech_use_num.as_str(), p.failure), ("FIN-PAYER", None));
    }
    let events: Vec<_> = [&earlier, &first, &second]
        .iter()
        .map(|r| serde_json::json!({ "payment_id": r.id }))
        .collect();
    assert_eq!(w.events().await, events, "one event per payment recorded, in order");
    assert_eq!(w.answer_under("key-1").await, Some(first.answer.body.clone()));
    assert_eq!(w.answer_under("key-5").await, Some(second.answer.body.clone()));
    assert_eq!(w.answer_under("key-earlier").await, Some(earlier.answer.body.clone()));
    assert_eq!(w.answer_under("key-3").await, None);
    assert_eq!(w.answer_under("key-4").await, None);
    w.db.remove().await;
}

/// Another request's transaction records a key of the group and commits while the group is
/// being written: the group never answers under it, and records the other request.
/// PostgreSQL: the group's statement waits for it, fails on the key and writes nothing; the
/// group runs once more, leaving that key out. SQLite (one writer): the group waits for the
/// writer, then leaves that request out.
async fn a_key_taken_meanwhile_is_never_answered_twice(backend: BackendKind) {
    let Some(w) = World::new(backend).await else { return };
    let w = std::sync::Arc::new(w);
    let taken = Request::new(w.payer, "ORDER-1", "key-taken");
    let other = Request::new(w.payer, "ORDER-2", "key-other");
    let meanwhile = w.take_key_meanwhile("key-taken").await;

    let group = tokio::spawn({
        let (w, taken, other) = (w.clone(), taken.clone(), other.clone());
        async move { w.record(&[taken.row(&w), other.row(&w)]).await }
    });
    waits_for_the_other_transaction(&w, backend, "").await;
    meanwhile.commit().await.unwrap();
    let recorded = group.await.unwrap();

    assert_eq!(recorded, Some(vec![other.id]));
    assert_eq!(w.events().await, vec![serde_json::json!({ "payment_id": other.id })]);
    assert_eq!(w.answer_under("key-other").await, Some(other.answer.body.clone()));
    assert!(!w.payment_exists(taken.id).await);
    assert_eq!(w.answer_under("key-taken").await, Some("elsewhere".to_owned()));
    w.db.remove().await;
}

/// PostgreSQL: one key of the group is taken meanwhile, and then another while the group runs
/// the second time: nothing of the group is written (`None`: every request runs on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_taken_meanwhile_twice_leave_nothing_written_on_postgres() {
    let Some(w) = World::new(BackendKind::Postgres).await else {
        return;
    };
    let w = std::sync::Arc::new(w);
    let first = Request::new(w.payer, "ORDER-1", "key-a");
    let second = Request::new(w.payer, "ORDER-2", "key-b");
    let (meanwhile_a, meanwhile_b) = (w.take_key_meanwhile("key-a").await, w.take_key_meanwhile("key-b").await);

    let group = tokio::spawn({
        let (w, first, second) = (w.clone(), first.clone(), second.clone());
        async move { w.record(&[first.row(&w), second.row(&w)]).await }
    });
    // The keys are inserted in key order: the first statement waits for `key-a`.
    waits_for_the_other_transaction(&w, BackendKind::Postgres, "").await;
    meanwhile_a.commit().await.unwrap();
    // The second leaves `key-a` out (committed now) and waits for `key-b`.
    // (Only the second statement has a `NOT EXISTS`, some 500 bytes in: `pg_stat_activity`
    // shows the first 1,024 by default.)
    waits_for_the_other_transaction(&w, BackendKind::Postgres, "NOT EXISTS").await;
    meanwhile_b.commit().await.unwrap();

    assert_eq!(
        group.await.unwrap(),
        None,
        "a key taken during the second try fails it too"
    );
    assert!(!w.payment_exists(first.id).await && !w.payment_exists(second.id).await);
    assert_eq!(w.events().await, Vec::<serde_json::Value>::new());
    assert_eq!(w.answer_under("key-a").await, Some("elsewhere".to_owned()));
    assert_eq!(w.answer_under("key-b").await, Some("elsewhere".to_owned()));
    w.db.remove().await;
}

/// PostgreSQL: the statement a group tries first only inserts into `idempotency_keys`, even in
/// the generic plan a connection caches from its sixth run — no plan built while the table is
/// small can read it whole on every group as it grows (docs/bench/payments.md, runs 17 and 18).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_statement_never_reads_the_keys_table() {
    use sqlx::Connection;
    let Some(w) = World::new(BackendKind::Postgres).await else {
        return;
    };
    let mut c = sqlx::PgConnection::connect(&w.db.url).await.unwrap();
    let prepare = format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE payment_group AS {}",
        minipay_store::testing::PAYMENT_GROUP_STATEMENT
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
        .execute(&mut c)
        .await
        .unwrap();
    // Fifteen empty arrays and the two instants: a generic plan does not look at them.
    let explain = "EXPLAIN EXECUTE payment_group('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', now(), now())";
    let plan: Vec<(String,)> = sqlx::query_as(explain).fetch_all(&mut c).await.unwrap();
    // Each line without its estimates ("  (cost=…").
    let plan: Vec<&str> = plan
        .iter()
        .map(|(line,)| line.split("  (cost=").next().unwrap_or_default().trim())
        .collect();
    let on_keys: Vec<&str> = plan
        .iter()
        .copied()
        .filter(|l| l.contains("idempotency_keys"))
        .collect();
    assert_eq!(on_keys, ["->  Insert on idempotency_keys"], "the plan: {plan:#?}");
    w.db.remove().await;
}

/// Until the group is blocked by a transaction holding its key (PostgreSQL: a lock wait of a
/// statement containing `statement_has`, seen in `pg_stat_activity`); SQLite: a moment, for
/// the group to queue for the writer.
async fn waits_for_the_other_transaction(w: &World, backend: BackendKind, statement_has: &str) {
    if backend == BackendKind::Sqlite {
        tokio::time::sleep(Duration::from_millis(200)).await;
        return;
    }
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&w.db.url).await.unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock' AND strpos(query, $1) > 0",
        )
        .bind(statement_has)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "no statement containing {statement_has:?} waited for a key"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The same key twice in one group (the service never sends that; the store still refuses
/// it): nothing of the group is written.
async fn a_key_twice_in_one_group_leaves_nothing_written(backend: BackendKind) {
    let Some(w) = World::new(backend).await else { return };
    let first = Request::new(w.payer, "ORDER-1", "key-twice");
    let again = Request::new(w.payer, "ORDER-2", "key-twice");
    assert_eq!(w.record(&[first.row(&w), again.row(&w)]).await, None);
    assert!(!w.payment_exists(first.id).await && !w.payment_exists(again.id).await);
    assert_eq!(w.events().await, Vec::<serde_json::Value>::new());
    assert_eq!(w.answer_under("key-twice").await, None);
    w.db.remove().await;
}

/// A key whose answer has expired: PostgreSQL's group leaves its request out (its first
/// statement fails on the key, the second leaves it out; on its own, the request uses the key
/// afresh); SQLite's group uses it afresh itself.
async fn an_expired_key_is_left_out_on_postgres_and_used_afresh_on_sqlite(backend: BackendKind) {
    let Some(w) = World::new(backend).await else { return };
    let earlier = Request::new(w.payer, "ORDER-EARLIER", "key-expired");
    let expired = w.now - SignedDuration::from_hours(1);
    let recorded = w.record_with_keys_expiring(&[earlier.row(&w)], expired).await;
    assert_eq!(recorded, Some(vec![earlier.id]));
    assert_eq!(w.answer_under("key-expired").await, None, "expired: free to use again");

    let afresh = Request::new(w.payer, "ORDER-AFRESH", "key-expired");
    let recorded = w.record(&[afresh.row(&w)]).await;
    match backend {
        BackendKind::Postgres => {
            assert_eq!(recorded, Some(vec![]));
            assert!(!w.payment_exists(afresh.id).await);
            assert_eq!(w.answer_under("key-expired").await, None);
        }
        BackendKind::Sqlite => {
            assert_eq!(recorded, Some(vec![afresh.id]));
            assert_eq!(w.answer_under("key-expired").await, Some(afresh.answer.body.clone()));
        }
    }
    w.db.remove().await;
}
