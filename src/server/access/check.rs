//! The permission check: the one place where a validated request meets the
//! policies. The handlers call it right after validating a request (and a
//! SyncPods session before submitting each op), so that a refused request
//! changes nothing and every refusal reads the same.

use tonic::{Request, Status};

use super::policy::{Action, Policy, Resource};
use super::user::{Caller, MASTERS, User};

/// What callers may do: everything, or what a policy file allows.
#[derive(Clone, Debug, Default)]
pub(in crate::server) struct Permissions {
    policy: Option<Policy>,
}

impl Permissions {
    /// Permissions by `policy`; without one, every authenticated caller may
    /// do everything.
    pub fn new(policy: Option<Policy>) -> Self {
        Permissions { policy }
    }

    /// Whether `user` may do `action` to `resource` in `namespace` (`None`:
    /// every namespace at once); if not, the `PERMISSION_DENIED` that says
    /// who, what and where.
    pub fn check(
        &self,
        user: &User,
        action: Action,
        resource: Resource,
        namespace: Option<&str>,
    ) -> Result<(), Status> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        if user.in_group(MASTERS) || policy.allows(user, action, resource, namespace) {
            return Ok(());
        }
        let (verb, resource) = (action.verb(), resource.name());
        Err(Status::permission_denied(match namespace {
            Some(namespace) => format!(
                "user {user} may not {verb} {resource} in namespace {namespace:?}: \
                 no policy allows it"
            ),
            None => format!(
                "user {user} may not {verb} {resource} in every namespace: no policy allows \
                 it (a request of every namespace needs a policy with namespace \"*\")"
            ),
        }))
    }
}

/// The caller the authentication layer found for `request`.
pub(in crate::server) fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        // Only a server built without its authentication layer gets here.
        .ok_or_else(|| Status::internal("the call was not authenticated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn refusals_name_the_user_the_action_the_resource_and_the_namespace() {
        let policy = Policy::parse(
            r#"{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": {"user": "ci", "namespace": "dev", "resource": "*"}}"#,
        )
        .unwrap();
        let permissions = Permissions::new(Some(policy));
        let ci = User::authenticated("ci", "", []);
        assert!(
            permissions
                .check(&ci, Action::Write, Resource::Pods, Some("dev"))
                .is_ok()
        );
        let refused = permissions
            .check(&ci, Action::Write, Resource::PodLogs, Some("prod"))
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(
            refused.message(),
            "user \"ci\" may not write pods/log in namespace \"prod\": no policy allows it"
        );
        let all = permissions
            .check(&ci, Action::Read, Resource::Pods, None)
            .unwrap_err();
        assert!(
            all.message()
                .starts_with("user \"ci\" may not read pods in every namespace")
        );
        let holder = User::token_holder();
        assert!(
            permissions
                .check(&holder, Action::Write, Resource::Pods, None)
                .is_ok()
        );
        assert!(
            Permissions::default()
                .check(&ci, Action::Write, Resource::Pods, None)
                .is_ok()
        );
    }
}
