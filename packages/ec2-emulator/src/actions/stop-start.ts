import { Ec2Error } from "../errors.js";
import { startInstance, stopInstance } from "../lifecycle.js";
import type { InstanceStateName } from "../state.js";
import { fields, set } from "../xml.js";
import { requestedInstances, stateChange } from "./instances.js";
import type { ActionHandler } from "./types.js";

/**
 * running → stopping → stopped. Stopping or stopped instances answer their state unchanged; any other state fails the whole call
 * with IncorrectInstanceState before anything changes, as on EC2. `Force` is accepted: the emulated stop is always a hard one.
 */
export const StopInstances: ActionHandler = (ctx, params) => {
  const instances = requestedInstances(ctx, params);
  params.bool("Force");
  const stoppable: InstanceStateName[] = ["running", "stopping", "stopped"];
  for (const instance of instances) {
    if (!stoppable.includes(instance.state)) throw new Ec2Error("IncorrectInstanceState", `This instance '${instance.instanceId}' is not in a state from which it can be stopped.`);
  }
  const changes = instances.map((instance) => {
    const previous = instance.state;
    stopInstance(ctx, instance);
    return stateChange(instance, previous);
  });
  return fields({ instancesSet: set(changes) });
};

/** stopped → pending → running. Pending or running instances answer their state unchanged; any other state fails the call. */
export const StartInstances: ActionHandler = (ctx, params) => {
  const instances = requestedInstances(ctx, params);
  const startable: InstanceStateName[] = ["stopped", "pending", "running"];
  for (const instance of instances) {
    if (!startable.includes(instance.state)) throw new Ec2Error("IncorrectInstanceState", `The instance '${instance.instanceId}' is not in a state from which it can be started.`);
  }
  const changes = instances.map((instance) => {
    const previous = instance.state;
    startInstance(ctx, instance);
    return stateChange(instance, previous);
  });
  return fields({ instancesSet: set(changes) });
};
