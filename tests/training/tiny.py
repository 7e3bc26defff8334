"""A tiny model with the real heads' names, for exact one-update checks."""

import keras


def tiny_model(channels: int = 3, seed: int = 0) -> keras.Model:
    init = keras.initializers.RandomNormal(0.0, 0.1, seed=seed)
    binit = keras.initializers.RandomNormal(0.0, 0.1, seed=seed + 1)
    x = keras.Input((None, None, channels), name="image")
    h = keras.layers.Conv2D(
        4,
        3,
        padding="same",
        activation="relu",
        name="conv1_1",
        kernel_initializer=init,
        bias_initializer=binit,
    )(x)
    frozen = keras.layers.Conv2DTranspose(
        4, 1, use_bias=False, trainable=False, name="score-dsn_2-up", kernel_initializer=init
    )(h)
    outputs = {}
    for k in (2, 3, 4, 5):
        src = frozen if k == 2 else h
        outputs[f"dsn_{k}"] = keras.layers.Conv2D(
            channels, 1, name=f"score-dsn_{k}", kernel_initializer=init, bias_initializer=binit
        )(src)
    outputs["fuse"] = keras.layers.Conv2D(
        channels, 1, name="upscore-fuse", kernel_initializer=init, bias_initializer=binit
    )(h)
    return keras.Model(x, {n: outputs[n] for n in ("fuse", "dsn_2", "dsn_3", "dsn_4", "dsn_5")})
