"""The one class a policy author writes, and the glue that exports it.

A policy subclasses :class:`Policy`. The host builds it once per sandbox
instance with :meth:`Policy.configure`, then calls the stages for every item.
The stages are plain methods over plain values, so pytest runs them natively
with no WebAssembly in sight; :func:`component` turns the class into what
componentize-py exports.

Stages must be pure functions of the item and the configuration: the host
reuses warm instances and replays recorded decisions.
"""

from __future__ import annotations

from .config import Config, ConfigError
from .types import Assessment, Classification, Evaluation, PolicyInfo, Verdict, WorkItem


class Policy:
    """A routing policy: three pure stages over a work item."""

    @classmethod
    def info(cls) -> PolicyInfo:
        """Name, version, description and triggers, for reports and review."""
        raise NotImplementedError(f"{cls.__name__}.info")

    @classmethod
    def configure(cls, config: Config) -> "Policy":
        """Builds the policy from the operator's configuration; raises
        :class:`ConfigError` naming the key of a bad value."""
        return cls()

    def classify(self, item: WorkItem) -> Classification:
        """Stage 1: what kind of situation this is, and whether a mandated rule fired."""
        raise NotImplementedError(f"{type(self).__name__}.classify")

    def score(self, item: WorkItem, classification: Classification) -> Assessment:
        """Stage 2: how risky the work is, and the signals that say why."""
        raise NotImplementedError(f"{type(self).__name__}.score")

    def escalate(self, item: WorkItem, classification: Classification, assessment: Assessment) -> Verdict:
        """Stage 3: who must act."""
        raise NotImplementedError(f"{type(self).__name__}.escalate")

    def evaluate(self, item: WorkItem) -> Evaluation:
        """All three stages, as the host runs them across the sandbox boundary."""
        classification = self.classify(item)
        assessment = self.score(item, classification)
        return Evaluation(classification, assessment, self.escalate(item, classification, assessment))


def component(policy_class: type):
    """The ``WitWorld`` class componentize-py exports for ``policy_class``.

    Only meaningful inside a component build: it imports the bindings
    componentize-py generates for the contract.
    """
    from componentize_py_types import Err  # type: ignore[import-not-found]
    from wit_world.imports import host  # type: ignore[import-not-found]

    from . import log

    log.bind(host)
    slot: dict = {}

    def host_config() -> Config:
        values = {}
        for key in host.config_keys():
            value = host.config_get(key)
            if value is not None:
                values[key] = value
        return Config(values)

    def policy() -> Policy:
        # The host always configures first; a stage reached without it
        # configures now, so a bad configuration raises here, with its key.
        configured = slot.get("policy")
        if configured is None:
            configured = slot["policy"] = policy_class.configure(host_config())
        return configured

    class WitWorld:
        def metadata(self):
            return policy_class.info()

        def configure(self) -> None:
            if "policy" in slot:
                return
            try:
                slot["policy"] = policy_class.configure(host_config())
            except ConfigError as error:
                raise Err(str(error)) from None

        def classify(self, item):
            return policy().classify(item)

        def score(self, item, classification):
            return policy().score(item, classification)

        def escalate(self, item, classification, assessment):
            return policy().escalate(item, classification, assessment)

        def evaluate(self, item):
            return policy().evaluate(item)

    return WitWorld
