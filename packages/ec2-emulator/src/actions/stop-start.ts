import { Ec2Error } from "../errors.js";
import { startInstance, stopInstance } from "../lifecycle.js";
import type { InstanceRecord, InstanceStateName } from "../state.js";
import { fields, set } from "../xml.js";
import { requestedInstances, stateChange } from "./instances.js";
import type { ActionHandler } from "./types.js";

/**
 * running → stopping → stopped. Stopping or stopped instances answer their state unchanged; any other state fails the whole call
 * with IncorrectInstanceState before anything changes, as on EC2. `Force` is accepted: the emulated stop is always a hard one.
 */
export const StopInstances: ActionHandler = (ctx, params) => {
  params.bool("Force");
  return transition(ctx, params, ["running", "stopping", "stopped"], "stopped", stopInstance);
};

/** stopped → pending → running. Pending or running instances answer their state unchanged; any other state fails the call. */
export const StartInstances: ActionHandler = (ctx, params) =>
  transition(ctx, params, ["stopped", "pending", "running"], "started", startInstance);

/** Checks every requested instance may make the transition, then applies it to each and answers the state changes. */
function transition(
  ctx: Parameters<ActionHandler>[0],
  params: Parameters<ActionHandler>[1],
  allowed: InstanceStateName[],
  verb: string,
  apply: (ctx: Parameters<ActionHandler>[0], instance: InstanceRecord) => void,
) {
  const instances = requestedInstances(ctx, params);
  for (const instance of instances) {
    if (!allowed.includes(instance.state))
      throw new Ec2Error("IncorrectInstanceState", `The instance '${instance.instanceId}' is not in a state from which it can be ${verb}.`);
  }
  const changes = instances.map((instance) => {
    const previous = instance.state;
    apply(ctx, instance);
    return stateChange(instance, previous);
  });
  return fields({ instancesSet: set(changes) });
}
