//! The one undo: every accepted change touched exactly one model entry, and an [`Edit`] holds
//! that entry as it was ([`Step::before`]) and as it is ([`Step::after`]). Undoing puts `before`
//! back; redoing puts `after` back. The control plane programs the same two values: forward from
//! `before` to `after`, and backward, to undo, from `after` to `before`. There is no hand-written
//! inverse of any change.

use std::net::Ipv4Addr;

use super::{
    ExternalSpec, FloatingIpSpec, HostSpec, InstancePortSpec, InterfaceKey, InterfaceSpec, Model,
    NetworkSpec, PeerSpec, PortKey, RouteKey, RouteSpec, RouterSpec,
};

/// One model entry before and after a change: `None` where it did not exist (an add, a delete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step<T> {
    pub before: Option<T>,
    pub after: Option<T>,
}

/// An object kind of the model: one spec per key.
pub trait Entry: Clone + PartialEq + Sized {
    type Key: Ord + Clone;
    fn key(&self) -> Self::Key;
    fn get<'m>(model: &'m Model, key: &Self::Key) -> Option<&'m Self>;
    /// Sets (`Some`) or removes (`None`) the entry under `key`.
    fn put(model: &mut Model, key: Self::Key, value: Option<Self>);
    /// How many entries of this kind the model holds.
    fn count(model: &Model) -> usize;
}

/// An [`Entry`] kept in one of the model's maps.
macro_rules! map_entry {
    ($spec:ty, $field:ident, $key:ty, |$s:ident| $k:expr) => {
        impl Entry for $spec {
            type Key = $key;

            fn key(&self) -> $key {
                let $s = self;
                $k
            }

            fn get<'m>(model: &'m Model, key: &$key) -> Option<&'m Self> {
                model.$field.get(key)
            }

            fn put(model: &mut Model, key: $key, value: Option<Self>) {
                match value {
                    Some(v) => model.$field.insert(key, v),
                    None => model.$field.remove(&key),
                };
            }

            fn count(model: &Model) -> usize {
                model.$field.len()
            }
        }
    };
}

map_entry!(PeerSpec, peers, String, |s| s.name.clone());
map_entry!(NetworkSpec, networks, String, |s| s.name.clone());
map_entry!(RouterSpec, routers, String, |s| s.name.clone());
map_entry!(InterfaceSpec, interfaces, InterfaceKey, |s| (
    s.router.clone(),
    s.network.clone()
));
map_entry!(RouteSpec, routes, RouteKey, |s| (
    s.router.clone(),
    s.prefix
));
map_entry!(InstancePortSpec, ports, PortKey, |s| (
    s.network.clone(),
    s.ip
));
map_entry!(FloatingIpSpec, floating_ips, Ipv4Addr, |s| s.ip);

/// A single entry of the model, with no key.
macro_rules! single_entry {
    ($spec:ty, $field:ident) => {
        impl Entry for $spec {
            type Key = ();

            fn key(&self) {}

            fn get<'m>(model: &'m Model, _: &()) -> Option<&'m Self> {
                model.$field.as_ref()
            }

            fn put(model: &mut Model, _: (), value: Option<Self>) {
                model.$field = value;
            }

            fn count(model: &Model) -> usize {
                usize::from(model.$field.is_some())
            }
        }
    };
}

single_entry!(HostSpec, host);
single_entry!(ExternalSpec, external);

impl<T: Entry> Step<T> {
    fn key(&self) -> T::Key {
        self.before
            .as_ref()
            .or(self.after.as_ref())
            .map(Entry::key)
            .expect("a step touches an entry")
    }

    /// Puts the entry back as it was before the change.
    pub fn undo(&self, model: &mut Model) {
        T::put(model, self.key(), self.before.clone());
    }

    /// Makes the change again, after an undo.
    pub fn redo(&self, model: &mut Model) {
        T::put(model, self.key(), self.after.clone());
    }
}

/// What one accepted change did to the model, by object kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    Host(Step<HostSpec>),
    Peer(Step<PeerSpec>),
    Network(Step<NetworkSpec>),
    Router(Step<RouterSpec>),
    Interface(Step<InterfaceSpec>),
    Route(Step<RouteSpec>),
    Port(Step<InstancePortSpec>),
    External(Step<ExternalSpec>),
    FloatingIp(Step<FloatingIpSpec>),
}

/// Runs `$body` with `$step` bound to the [`Step`] inside an [`Edit`], whatever its kind: the one
/// list of object kinds that code generic over them (undo, redo, programming) goes through.
macro_rules! each_step {
    ($edit:expr, $step:ident => $body:expr) => {
        match $edit {
            $crate::model::Edit::Host($step) => $body,
            $crate::model::Edit::Peer($step) => $body,
            $crate::model::Edit::Network($step) => $body,
            $crate::model::Edit::Router($step) => $body,
            $crate::model::Edit::Interface($step) => $body,
            $crate::model::Edit::Route($step) => $body,
            $crate::model::Edit::Port($step) => $body,
            $crate::model::Edit::External($step) => $body,
            $crate::model::Edit::FloatingIp($step) => $body,
        }
    };
}
pub(crate) use each_step;

impl Edit {
    /// Puts the touched entry back as it was.
    pub fn undo(&self, model: &mut Model) {
        each_step!(self, s => s.undo(model))
    }

    /// Makes the edit again.
    pub fn redo(&self, model: &mut Model) {
        each_step!(self, s => s.redo(model))
    }
}
