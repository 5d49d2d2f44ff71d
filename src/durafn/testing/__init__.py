"""Testing kit: run orchestrations end to end in memory, on a virtual clock.

::

    from durafn.testing import VirtualRuntime

    def test_approval_times_out():
        with VirtualRuntime(app, activities={"send_reminder": lambda _: None}) as rt:
            instance_id = rt.client.start_new("approval", {"amount": 100})
            status = rt.run_to_completion(instance_id)     # 30 virtual days pass at once
            assert status.output == "escalated"

Time moves only when the runtime is idle: :meth:`VirtualRuntime.advance` moves it by a given
amount, running everything that comes due on the way; :meth:`VirtualRuntime.run_to_completion`
jumps from one due timer to the next until the instance finishes.
"""

from durafn.testing.runtime import VirtualRuntime

__all__ = ["VirtualRuntime"]
