//! Users and sessions: signup (with the main account), login, profile, lookup.

use crate::Wallet;
use crate::auth::{DUMMY_PASSWORD_HASH, hash_password, verify_password};
use crate::error::{ServiceError, ServiceResult};
use crate::views::{TokenView, UserLookupView, UserView};
use anyhow::Context;
use minipay_core::transfer::TransferMode;
use minipay_core::user::{Email, UserName, check_password};
use minipay_core::{AccountId, UserId};
use minipay_store::{NewUser, StoreError, User};

/// A signup, validated at the edge.
pub struct NewUserRequest {
    pub email: Email,
    pub password: String,
    pub name: UserName,
}

impl NewUserRequest {
    pub fn parse(email: &str, password: String, name: &str) -> ServiceResult<Self> {
        let email = Email::parse(email).map_err(ServiceError::validation)?;
        check_password(&password).map_err(ServiceError::validation)?;
        let name = UserName::parse(name).map_err(ServiceError::validation)?;
        Ok(Self { email, password, name })
    }
}

pub struct UpdateUserRequest {
    pub name: Option<UserName>,
    pub transfer_mode: Option<TransferMode>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ServiceResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("password hashing task")
        .map_err(ServiceError::Internal)
}

impl Wallet {
    #[tracing::instrument(name = "minipay.users.sign_up", skip_all, err(level = "debug"))]
    pub async fn sign_up(&self, req: NewUserRequest) -> ServiceResult<UserView> {
        let password = req.password;
        let hash = blocking(move || hash_password(&password)).await??;
        let now = self.clock.now();
        let (id, main) = (UserId::new(), AccountId::new());
        let mut tx = self.store.begin().await?;
        let insert = tx
            .insert_user(&NewUser {
                id,
                email: req.email.as_str(),
                name: req.name.as_str(),
                password_hash: &hash,
                main_account_id: main,
                at: now,
            })
            .await;
        match insert {
            Err(StoreError::Unique(_)) => {
                return Err(ServiceError::Conflict("that email is already registered".into()));
            }
            other => other?,
        }
        let user = tx.user(id).await?.context("user just inserted")?;
        tx.commit().await?;
        Ok(UserView::from(&user))
    }

    /// Exchanges email and password for an access token. Unknown email and wrong password
    /// answer the same, in the same time.
    #[tracing::instrument(name = "minipay.users.log_in", skip_all, err(level = "debug"))]
    pub async fn log_in(&self, email: &str, password: String) -> ServiceResult<TokenView> {
        let wrong = || ServiceError::Unauthorized("wrong email or password");
        let email = Email::parse(email).map_err(|_| wrong())?;
        self.throttle.check(email.as_str(), self.clock.now())?;
        let user = self.store.read().await?.user_by_email(email.as_str()).await?;
        let stored = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| DUMMY_PASSWORD_HASH.clone());
        let ok = blocking(move || verify_password(&password, &stored)).await?;
        let Some(user) = user.filter(|_| ok) else {
            self.throttle.failed(email.as_str(), self.clock.now());
            return Err(wrong());
        };
        self.throttle.succeeded(email.as_str());
        let token = self.tokens.issue(user.id, self.clock.now())?;
        Ok(TokenView {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: self.tokens.ttl_secs(),
        })
    }

    /// The user an access token belongs to (who must still exist).
    pub async fn authenticate(&self, token: &str) -> ServiceResult<UserId> {
        let id = self.tokens.verify(token, self.clock.now())?;
        Ok(id)
    }

    pub(crate) async fn existing_user(&self, id: UserId) -> ServiceResult<User> {
        self.store
            .read()
            .await?
            .user(id)
            .await?
            .ok_or(ServiceError::Unauthorized("the user no longer exists"))
    }

    pub async fn me(&self, me: UserId) -> ServiceResult<UserView> {
        Ok(UserView::from(&self.existing_user(me).await?))
    }

    #[tracing::instrument(name = "minipay.users.update", skip_all, err(level = "debug"))]
    pub async fn update_me(&self, me: UserId, req: UpdateUserRequest) -> ServiceResult<UserView> {
        let mut tx = self.store.begin().await?;
        let name = req.name.as_ref().map(UserName::as_str);
        tx.update_user(me, name, req.transfer_mode, self.clock.now()).await?;
        let user = tx
            .user(me)
            .await?
            .ok_or(ServiceError::Unauthorized("the user no longer exists"))?;
        tx.commit().await?;
        Ok(UserView::from(&user))
    }

    pub async fn lookup_user(&self, email: &str) -> ServiceResult<UserLookupView> {
        let email = Email::parse(email).map_err(ServiceError::validation)?;
        let user = self
            .store
            .read()
            .await?
            .user_by_email(email.as_str())
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        Ok(UserLookupView {
            id: user.id,
            name: user.name,
            main_account_id: user.main_account_id,
        })
    }
}
