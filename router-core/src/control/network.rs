//! Tenant networks: each has an id the workers index their topology by. Which local ports it
//! is attached to is published with the topology; its instance ports follow a move of its only
//! local port.

use super::capacity::{Fits, Plan, Pool};
use super::{ApplyError, ControlPlane, Program};
use crate::ids::NetworkId;
use crate::model::NetworkSpec;

impl Program for NetworkSpec {
    fn plan(cp: &ControlPlane, old: Option<&Self>, new: &Self, plan: &mut Plan) -> Fits {
        let Some(old) = old else {
            return plan.id(Pool::Networks);
        };
        if old.ports != new.ports {
            for p in cp.model.ports_of_network(&new.name) {
                cp.plan_port_neighbor(p, plan)?;
            }
        }
        Ok(())
    }

    fn install(cp: &mut ControlPlane, old: Option<&Self>, new: &Self) -> Result<(), ApplyError> {
        if old.is_none() {
            let id = NetworkId::new(cp.ids.alloc(&cp.qsbr, Pool::Networks)?);
            cp.networks.insert(new.name.clone(), id);
        }
        cp.dirty = true;
        // Local ports moved: instance ports that defaulted to the only port follow it.
        if old.is_some_and(|o| o.ports != new.ports) {
            cp.publish_if_dirty();
            let ports: Vec<_> = cp.model.ports_of_network(&new.name).cloned().collect();
            for p in ports {
                cp.remove_port(&p);
                cp.install_port(&p)?;
            }
        }
        Ok(())
    }

    fn remove(cp: &mut ControlPlane, old: &Self) {
        if let Some(id) = cp.networks.remove(&old.name) {
            cp.retract(Pool::Networks, id);
        }
    }
}
