"""Physics setters: how a parameter's value reaches a compiled MuJoCo model.

Each setter is named by its parameter's entry in :mod:`.parameters` (the registry of drifting
parameters: bounds, names, what each touches); :func:`make_setter` builds the one an entry names.

Each setter captures the model's own (base) values when it is built and then writes either
``base * value`` (mode ``"scale"``) or ``value`` (mode ``"absolute"``) into ``mjModel`` arrays.
No XML is reloaded; MuJoCo reads these arrays on the next ``mj_step``. Facts the setters rely on:

- **friction**: a contact between two geoms of equal priority uses the element-wise *maximum* of the
  two geoms' ``friction`` vectors. So lowering only the floor's friction changes nothing when a
  foot's friction is higher (Hopper-v5: floor 1.0, foot 2.0, contact 2.0). The setter therefore
  writes every geom's sliding friction, ``geom_friction[:, 0]``, unless ``geoms`` names a subset.
  Torsional and rolling friction (columns 1 and 2) are left as they are: the contacts of the
  gymnasium locomotion envs have ``condim`` 3 (or 1), which use sliding friction only.
- **gravity**: ``opt.gravity``. A number scales the vector (scale) or sets its magnitude along the
  env's own direction (absolute); a 3-vector sets it (absolute only).
- **body_mass**: ``body_mass`` of every body but the world (or of the named bodies), with
  ``body_inertia`` scaled by the same factor (a uniform change of density keeps the shape). Then
  ``mj_setConst`` recomputes the constants derived from masses (``body_subtreemass``, ``dof_M0``,
  ...). ``mj_setConst`` overwrites the ``mjData`` it is given with the ``qpos0`` configuration, so
  it runs on a scratch ``mjData``, never on the env's own.
- **actuator_gear**: ``actuator_gear``, the actuator's force multiplier (strength). Scale multiplies
  the whole gear vector; absolute sets its first component (the only one used by the joint
  transmissions of the locomotion envs).
- **joint_damping**: ``dof_damping`` of the degrees of freedom of actuated joints (the limbs; the
  root joints of the locomotion envs have no damping and are not touched, so an absolute value does
  not add drag to the whole body).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Protocol

import mujoco
import numpy as np

from rl_plasticity.errors import ConfigError, one_of
from rl_plasticity.nonstationary.parameters import PHYSICS, drifting_parameter
from rl_plasticity.nonstationary.schedules import Value

MODES = ("scale", "absolute")


class Setter(Protocol):
    """What every physics setter does: write a schedule's value into the model."""

    def apply(self, value: Value) -> None:
        """Write ``value`` (a multiplier in scale mode, else an absolute value)."""


class MujocoWarning(UserWarning):
    """A warning MuJoCo's C library raised (``mju_warning``), such as a compiler deprecation."""


_warned: set[str] = set()


def _mujoco_warning(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(f"MuJoCo: {message}", MujocoWarning, stacklevel=2)


def route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings to Python's :mod:`warnings`, each message once per process.

    Without a handler MuJoCo prints each warning and appends it to ``MUJOCO_LOG.TXT`` in the
    working directory (HalfCheetah-v5's XML alone does so on every load, for its deprecated
    ``settotalmass``). A handler the user installed is kept. Called when this module is imported,
    before any env of a spec is made.
    """
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_mujoco_warning)


route_mujoco_warnings()


def _ids(model: mujoco.MjModel, kind: mujoco.mjtObj, count: int, names: Sequence[str], key: str):
    known = [mujoco.mj_id2name(model, kind, i) for i in range(count)]
    ids = []
    for name in names:
        if name not in known:
            valid = ", ".join(n for n in known if n)
            raise ConfigError(key, name, f"not in this model; one of: {valid}")
        ids.append(known.index(name))
    return np.array(ids, dtype=np.intp)


class Friction:
    """Sliding friction of every geom (or of the named ``geoms``).

    :param model: the env's ``mjModel``
    :param mode: ``"scale"`` or ``"absolute"``
    :param geoms: geom names; None for every geom
    """

    def __init__(
        self, model: mujoco.MjModel, mode: str, geoms: Sequence[str] | None = None
    ) -> None:
        self.model, self.mode = model, mode
        if geoms is None:
            self.ids = np.arange(model.ngeom)
        else:
            self.ids = _ids(model, mujoco.mjtObj.mjOBJ_GEOM, model.ngeom, geoms, "geoms")
        self.base = model.geom_friction[self.ids, 0].copy()

    def apply(self, value: Value) -> None:
        """Write ``value`` (a multiplier or an absolute friction coefficient)."""
        new = self.base * value if self.mode == "scale" else value
        self.model.geom_friction[self.ids, 0] = new


class Gravity:
    """The gravity vector ``opt.gravity``.

    :param model: the env's ``mjModel``
    :param mode: ``"scale"`` or ``"absolute"``
    """

    def __init__(self, model: mujoco.MjModel, mode: str) -> None:
        self.model, self.mode = model, mode
        self.base = model.opt.gravity.copy()

    def apply(self, value: Value) -> None:
        """Write ``value``: a multiplier, a magnitude (absolute number) or a vector."""
        if isinstance(value, tuple):
            self.model.opt.gravity[:] = value
        elif self.mode == "scale":
            self.model.opt.gravity[:] = self.base * value
        else:
            norm = float(np.linalg.norm(self.base))
            direction = self.base / norm if norm > 0 else np.array([0.0, 0.0, -1.0])
            self.model.opt.gravity[:] = direction * value


class BodyMass:
    """Masses (and inertias, by the same factor) of every body but the world, or of ``bodies``.

    :param model: the env's ``mjModel``
    :param mode: ``"scale"`` or ``"absolute"``
    :param bodies: body names; None for every body with a mass
    """

    def __init__(
        self, model: mujoco.MjModel, mode: str, bodies: Sequence[str] | None = None
    ) -> None:
        self.model, self.mode = model, mode
        if bodies is None:
            self.ids = np.flatnonzero(model.body_mass > 0)
        else:
            self.ids = _ids(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody, bodies, "bodies")
            massless = [b for b, i in zip(bodies, self.ids, strict=True) if model.body_mass[i] <= 0]
            if massless:
                raise ConfigError("bodies", massless[0], "a body with a mass (not the world)")
        self.base_mass = model.body_mass[self.ids].copy()
        self.base_inertia = model.body_inertia[self.ids].copy()
        # mj_setConst writes the qpos0 configuration into the data it gets: keep the env's own
        # mjData out of it.
        self.scratch = mujoco.MjData(model)

    def apply(self, value: Value) -> None:
        """Write ``value`` (a multiplier or an absolute mass in kg) and recompute constants."""
        factor = value if self.mode == "scale" else value / self.base_mass
        self.model.body_mass[self.ids] = self.base_mass * factor
        self.model.body_inertia[self.ids] = self.base_inertia * np.reshape(factor, (-1, 1))
        mujoco.mj_setConst(self.model, self.scratch)


class ActuatorGear:
    """Actuator strength: ``actuator_gear`` of every actuator.

    :param model: the env's ``mjModel``
    :param mode: ``"scale"`` or ``"absolute"``
    """

    def __init__(self, model: mujoco.MjModel, mode: str) -> None:
        self.model, self.mode = model, mode
        self.base = model.actuator_gear.copy()

    def apply(self, value: Value) -> None:
        """Write ``value`` (a multiplier, or the absolute gear of every actuator)."""
        if self.mode == "scale":
            self.model.actuator_gear[:] = self.base * value
        else:
            self.model.actuator_gear[:, 0] = value


class JointDamping:
    """Damping of the degrees of freedom of the actuated joints.

    :param model: the env's ``mjModel``
    :param mode: ``"scale"`` or ``"absolute"``
    """

    def __init__(self, model: mujoco.MjModel, mode: str) -> None:
        self.model, self.mode = model, mode
        joints = model.actuator_trnid[model.actuator_trntype == mujoco.mjtTrn.mjTRN_JOINT, 0]
        dofs = [
            model.jnt_dofadr[j] + k
            for j in sorted(set(joints.tolist()))
            for k in range(_joint_dofs(model.jnt_type[j]))
        ]
        self.ids = np.array(dofs, dtype=np.intp)
        self.base = model.dof_damping[self.ids].copy()

    def apply(self, value: Value) -> None:
        """Write ``value`` (a multiplier or an absolute damping)."""
        new = self.base * value if self.mode == "scale" else value
        self.model.dof_damping[self.ids] = new


def _joint_dofs(joint_type: int) -> int:
    return {
        mujoco.mjtJoint.mjJNT_FREE: 6,
        mujoco.mjtJoint.mjJNT_BALL: 3,
    }.get(mujoco.mjtJoint(joint_type), 1)


def make_setter(
    parameter: str,
    model: mujoco.MjModel,
    mode: str,
    *,
    bodies: Sequence[str] | None = None,
    geoms: Sequence[str] | None = None,
) -> Setter:
    """The setter for ``parameter`` on ``model``, capturing the model's current values as base.

    :param parameter: a physics parameter of :data:`~.parameters.PARAMETERS`
    :param model: the env's ``mjModel`` (``env.unwrapped.model``)
    :param mode: ``"scale"`` or ``"absolute"``
    :param bodies: body names for a parameter that selects ``bodies`` (None: all)
    :param geoms: geom names for a parameter that selects ``geoms`` (None: all)
    :raises ConfigError: on an unknown parameter or a name the model does not have
    """
    entry = drifting_parameter(parameter)
    if entry.transform:
        raise ConfigError("parameter", parameter, one_of(parameter, PHYSICS))
    if entry.selects is None:
        return entry.setter_class()(model, mode)
    names = {"bodies": bodies, "geoms": geoms}[entry.selects]
    return entry.setter_class()(model, mode, names)
