"""tf.distribute strategies: none, mirrored (local GPUs or logical CPUs), multi-worker."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from liverseg.errors import ConfigError

DISTRIBUTIONS = ("none", "mirrored", "multi_worker")


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into ``num_devices`` logical devices (before TF initialises)."""
    if num_devices <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as exc:
        raise ConfigError(
            f"cannot split the CPU into {num_devices} devices after TensorFlow "
            f"has initialised: {exc}"
        ) from None


def make_strategy(distribution: str = "none", cpu_devices: int = 0) -> tf.distribute.Strategy:
    """The strategy for ``distribution``.

    ``mirrored`` uses every local GPU, or ``cpu_devices`` logical CPUs when
    there are none (or when ``cpu_devices`` is set); ``multi_worker`` reads
    the cluster from ``TF_CONFIG``.
    """
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    if cpu_devices > 1:
        split_cpu(cpu_devices)
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus and not cpu_devices:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    if "TF_CONFIG" not in os.environ:
        raise ConfigError("--distribution=multi_worker needs TF_CONFIG describing the cluster")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {exc}") from None
    communication = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints and logs."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief
