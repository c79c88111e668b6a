# Copyright 2026 spatialvla_ros authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.


"""Drive a lifecycle node to a wanted state, going by the state it reports (rclpy client side).

Lifecycle requests go by the node's actual state: ask get_state, wait while a transition is
under way or the node does not answer (a configuring node serves no services until it is
done), request the one transition that leads towards the wanted state and ask again. A slow
node delays the caller instead of ending its run; a node that does not get there in time gives
a LifecycleError naming it, the last state and the transitions it refused.
"""

import time

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from lifecycle_msgs.srv import GetState

# The one transition that leads from a stable lifecycle state towards 'active' / 'inactive'.
_TOWARDS = {
    ('unconfigured', 'active'): Transition.TRANSITION_CONFIGURE,
    ('unconfigured', 'inactive'): Transition.TRANSITION_CONFIGURE,
    ('inactive', 'active'): Transition.TRANSITION_ACTIVATE,
    ('active', 'inactive'): Transition.TRANSITION_DEACTIVATE,
}
_NAMES = {Transition.TRANSITION_CONFIGURE: 'configure',
          Transition.TRANSITION_ACTIVATE: 'activate',
          Transition.TRANSITION_DEACTIVATE: 'deactivate'}


class LifecycleError(RuntimeError):
    """A lifecycle node did not reach the wanted state."""


def call(client, request, timeout_s=30.0):
    """Call a service from a node spun elsewhere; raises TimeoutError naming the service."""
    future = client.call_async(request)
    deadline = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f'{client.srv_name}: no answer within {timeout_s:.0f} s')
        time.sleep(0.005)
    return future.result()


class LifecycleClient:
    """get_state / change_state clients of the lifecycle node `target`, created on `node`."""

    def __init__(self, node, target):
        self.target = target
        self._change = node.create_client(ChangeState, f'{target}/change_state')
        self._get = node.create_client(GetState, f'{target}/get_state')
        self.clients = (self._change, self._get)

    def ready(self):
        """Return True when both lifecycle services are served."""
        return all(c.service_is_ready() for c in self.clients)

    def state(self, timeout_s=10.0):
        """Return the node's lifecycle state label; '' when it does not answer."""
        if not self._get.service_is_ready():
            return ''
        try:
            return call(self._get, GetState.Request(), timeout_s).current_state.label
        except TimeoutError:
            return ''

    def ensure(self, wanted, timeout_s=120.0, processes=(), patience_s=0.0):
        """Bring the node to `wanted` ('active' or 'inactive') from whatever state it is in.

        `processes` (objects with `check()`, e.g. NodeProcess) are checked on every round, so
        a node process that died is reported as such. A transition is requested only once the
        node has stayed in its state for `patience_s`: a node that something else is bringing
        up (policy_launch --autostart) gets there without two requests crossing. Returns
        `wanted`; raises LifecycleError.
        """
        deadline = time.monotonic() + timeout_s
        refused, state, seen, since = [], '', None, time.monotonic()
        while time.monotonic() < deadline:
            for proc in processes:
                proc.check()
            state = self.state(min(10.0, max(deadline - time.monotonic(), 0.1)))
            if state == wanted:
                return state
            if state == 'finalized':
                break
            if state != seen:
                seen, since = state, time.monotonic()
            transition = _TOWARDS.get((state, wanted))
            if transition is None or time.monotonic() - since < patience_s:
                time.sleep(0.1)            # between states, not answering, or left alone yet
                continue
            request = ChangeState.Request()
            request.transition.id = transition
            try:
                answer = call(self._change, request, max(deadline - time.monotonic(), 1.0))
            except TimeoutError:
                continue
            seen = None                    # a new state (or a refusal) starts a new wait
            if not answer.success:
                refused.append(f'{_NAMES[transition]} from {state}')
                time.sleep(0.2)
        refusals = f'; refused: {", ".join(refused)}' if refused else ''
        raise LifecycleError(f'{self.target}: not {wanted} within {timeout_s:.0f} s (last state: '
                             f'{state or "not answering"}{refusals}); see its log')


__all__ = ['LifecycleClient', 'LifecycleError', 'call']
