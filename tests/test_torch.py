"""Agreement with PyTorch, in float64.

- forward, loss, every dW/db and dL/dX against torch autograd on the same weights, for random
  MLPs (depth 1–4, widths 1–9, every activation, every loss, batch sizes including B = 1);
- every optimizer against ``torch.optim`` over 50 steps;
- every schedule against ``torch.optim.lr_scheduler``;
- a whole ``model.fit`` run against the equivalent hand-written torch loop.

Errors are norm-wise relative, max|a − b| / max|b|: 1e-10 for one pass, 1e-8 after many steps.
The torch side is written by hand from the layerwise weights (``W`` is (n_out, n_in), as in
``torch.nn.Linear``), so nothing of layerwise is reused to compute the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import layerwise as lw
from layerwise import _blas

torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install torch==2.13.0")
F = torch.nn.functional

PASS_TOL = 1e-10      # one forward/backward pass
STEPS_TOL = 1e-8      # after many optimizer steps
LR_TOL = 1e-12        # learning-rate schedules


# -- helpers --------------------------------------------------------------------------------------
def rel_err(actual: Any, expected: Any) -> float:
    """Norm-wise relative error max|a − b| / max|b| (b is the torch reference)."""
    if torch.is_tensor(expected):
        expected = expected.detach().numpy()
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: layerwise {a.shape}, torch {b.shape}"
    diff = np.max(np.abs(a - b), initial=0.0)
    return float(diff / max(np.max(np.abs(b), initial=0.0), 1e-300))


def assert_close(actual: Any, expected: Any, tol: float, what: str) -> None:
    err = rel_err(actual, expected)
    assert err <= tol, f"{what}: relative error {err:.3e} exceeds {tol:.0e}"


def dense_layers(model: lw.Sequential) -> dict[int, lw.Dense]:
    return {i: layer for i, layer in enumerate(model.layers) if isinstance(layer, lw.Dense)}


def torch_params(model: lw.Sequential) -> dict[int, tuple[Any, Any]]:
    """Leaf tensors (W, b) copied from every Dense layer, keyed by layer index."""
    return {i: (torch.tensor(d.W, dtype=torch.float64, requires_grad=True),
                torch.tensor(d.b, dtype=torch.float64, requires_grad=True))
            for i, d in dense_layers(model).items()}


def flat_params(params: dict[int, tuple[Any, Any]]) -> list[Any]:
    return [t for Wb in params.values() for t in Wb]


TORCH_ACTIVATIONS: dict[type, Callable[[Any, Any], Any]] = {
    lw.Identity: lambda layer, Z: Z,
    lw.ReLU: lambda layer, Z: torch.relu(Z),
    lw.LeakyReLU: lambda layer, Z: F.leaky_relu(Z, negative_slope=layer.alpha),
    lw.Sigmoid: lambda layer, Z: torch.sigmoid(Z),
    lw.Tanh: lambda layer, Z: torch.tanh(Z),
    lw.GELU: lambda layer, Z: F.gelu(Z, approximate=layer.approximate),
    lw.Softplus: lambda layer, Z: F.softplus(Z, beta=1.0, threshold=layer.threshold),
    lw.ELU: lambda layer, Z: F.elu(Z, alpha=layer.alpha),
    lw.Softmax: lambda layer, Z: torch.softmax(Z, dim=1),
}


def torch_forward(model: lw.Sequential, params: dict[int, tuple[Any, Any]], X: Any) -> Any:
    """The same network in torch ops: Dense is F.linear(A, W, b), activations by type."""
    A = X
    for i, layer in enumerate(model.layers):
        if isinstance(layer, lw.Dense):
            A = F.linear(A, *params[i])                         # A @ W.T + b
        else:
            A = TORCH_ACTIVATIONS[type(layer)](layer, A)
    return A


def randomise_biases(model: lw.Sequential, rng: np.random.Generator) -> None:
    """Biases start at zero; give them values so the bias path is exercised."""
    for d in dense_layers(model).values():
        d.b[...] = rng.normal(scale=0.5, size=d.b.shape)


def as_torch(a: np.ndarray) -> Any:
    return torch.from_numpy(np.ascontiguousarray(a).copy())


# -- activations and losses under test ----------------------------------------------------------
HIDDEN: list[Callable[[np.random.Generator], lw.Layer]] = [
    lambda rng: lw.ReLU(),
    lambda rng: lw.LeakyReLU(alpha=float(rng.choice([0.01, 0.2, 1.5]))),
    lambda rng: lw.Sigmoid(),
    lambda rng: lw.Tanh(),
    lambda rng: lw.GELU("none"),
    lambda rng: lw.GELU("tanh"),
    lambda rng: lw.Softplus(),
    lambda rng: lw.ELU(alpha=float(rng.uniform(0.1, 2.0))),
    lambda rng: lw.Identity(),
    lambda rng: lw.Softmax(),
]


def random_mlp(rng: np.random.Generator, min_out: int = 1, sigmoid_output: bool = False
               ) -> lw.Sequential:
    """1–4 Dense layers of widths 1–9 with random hidden activations (Softmax included).

    Half of the models are built in float64, half in float32 and cast with ``astype``.
    """
    depth = int(rng.integers(1, 5))
    sizes = [int(s) for s in rng.integers(1, 10, size=depth + 1)]
    sizes[-1] = max(sizes[-1], min_out)
    dtype = np.float64 if rng.random() < 0.5 else np.float32
    layers: list[lw.Layer] = []
    for k in range(depth):
        layers.append(lw.Dense(sizes[k], sizes[k + 1], dtype=dtype, rng=rng))
        if k < depth - 1:
            layers.append(HIDDEN[int(rng.integers(len(HIDDEN)))](rng))
    if sigmoid_output:
        layers.append(lw.Sigmoid())
    model = lw.Sequential(layers).astype(np.float64)
    randomise_biases(model, rng)
    return model


def regression_targets(rng: np.random.Generator, B: int, K: int) -> np.ndarray:
    return rng.normal(size=(B, K))


def binary_targets(rng: np.random.Generator, B: int, K: int) -> np.ndarray:
    """0/1 labels or probabilities in [0, 1], half and half."""
    if rng.random() < 0.5:
        return rng.integers(0, 2, size=(B, K)).astype(np.float64)
    return rng.uniform(0, 1, size=(B, K))


def int_labels(rng: np.random.Generator, B: int, K: int) -> np.ndarray:
    return rng.integers(0, K, size=B)


def one_hot(rng: np.random.Generator, B: int, K: int) -> np.ndarray:
    return np.eye(K)[rng.integers(0, K, size=B)]


def soft_targets(rng: np.random.Generator, B: int, K: int) -> np.ndarray:
    return rng.dirichlet(np.ones(K), size=B)


def half_mse(a: Any, y: Any) -> Any:
    """layerwise's textbook MSE: ½‖a − y‖² summed over outputs, averaged over the batch."""
    return 0.5 * ((a - y) ** 2).sum(dim=1).mean()


@dataclass
class LossCase:
    """A layerwise loss, its torch equivalent and the targets it takes."""

    make: Callable[[np.random.Generator], tuple[lw.Loss, Callable[[Any, Any], Any]]]
    target: Callable[[np.random.Generator, int, int], np.ndarray]
    sigmoid_output: bool = False     # end the network with a Sigmoid layer (BCE on probabilities)
    min_out: int = 1


def _huber(rng: np.random.Generator) -> tuple[lw.Loss, Callable[[Any, Any], Any]]:
    delta = float(rng.uniform(0.2, 2.0))
    return lw.Huber(delta), lambda a, y: F.huber_loss(a, y, delta=delta)


def _ce(smoothed: bool) -> Callable[[np.random.Generator], tuple[lw.Loss, Any]]:
    def make(rng: np.random.Generator) -> tuple[lw.Loss, Callable[[Any, Any], Any]]:
        eps = float(rng.uniform(0.05, 0.3)) if smoothed else 0.0
        return (lw.CrossEntropy(label_smoothing=eps),
                lambda a, y: F.cross_entropy(a, y, label_smoothing=eps))
    return make


LOSS_CASES: dict[str, LossCase] = {
    "mse": LossCase(lambda rng: (lw.MSE(), half_mse), regression_targets),
    "mae": LossCase(lambda rng: (lw.MAE(), F.l1_loss), regression_targets),
    "huber": LossCase(_huber, regression_targets),
    "bce_logits": LossCase(
        lambda rng: (lw.BinaryCrossEntropy(from_logits=True),
                     F.binary_cross_entropy_with_logits), binary_targets),
    "bce_probs": LossCase(
        lambda rng: (lw.BinaryCrossEntropy(from_logits=False), F.binary_cross_entropy),
        binary_targets, sigmoid_output=True),
    "ce_labels": LossCase(_ce(False), int_labels, min_out=2),
    "ce_labels_smoothed": LossCase(_ce(True), int_labels, min_out=2),
    "ce_onehot": LossCase(_ce(False), one_hot, min_out=2),
    "ce_onehot_smoothed": LossCase(_ce(True), one_hot, min_out=2),
    "ce_soft": LossCase(_ce(False), soft_targets, min_out=2),
    "ce_soft_smoothed": LossCase(_ce(True), soft_targets, min_out=2),
}


def check_pass(model: lw.Sequential, loss: lw.Loss, torch_loss: Callable[[Any, Any], Any],
               X: np.ndarray, y: np.ndarray, tol: float = PASS_TOL) -> None:
    """One forward + backward in layerwise and in torch autograd; compare everything."""
    out = model.forward(X, training=True).copy()
    L = loss.forward(out, y)
    dX = model.backward(loss.backward()).copy()

    params = torch_params(model)
    Xt = as_torch(X).requires_grad_(True)
    out_t = torch_forward(model, params, Xt)
    L_t = torch_loss(out_t, as_torch(y))
    L_t.backward()

    B = X.shape[0]
    assert_close(out, out_t, tol, f"forward output (B={B})")
    assert_close(L, L_t, tol, f"loss value (B={B})")
    for i, d in dense_layers(model).items():
        W_t, b_t = params[i]
        assert_close(d.dW, W_t.grad, tol, f"dW of layer {i} (B={B})")
        assert_close(d.db, b_t.grad, tol, f"db of layer {i} (B={B})")
    assert_close(dX, Xt.grad, tol, f"dL/dX (B={B})")


# -- 1. forward and backward against autograd ---------------------------------------------------
@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("loss_name", list(LOSS_CASES))
def test_random_mlp_forward_backward_match_autograd(loss_name: str, seed: int) -> None:
    """A random MLP (depth 1–4, widths 1–9, mixed activations incl. Softmax) under each loss:
    output, loss, every dW/db and dL/dX equal torch autograd to 1e-10, for a batch B ≥ 2, then
    B = 1 and a mid-sized batch through the same (now larger) buffers."""
    case = LOSS_CASES[loss_name]
    rng = np.random.default_rng([seed, list(LOSS_CASES).index(loss_name)])
    model = random_mlp(rng, case.min_out, case.sigmoid_output)
    loss, torch_loss = case.make(rng)
    n_in, n_out = model.n_in, model.n_out
    assert n_in is not None and n_out is not None
    B = int(rng.integers(2, 13))
    for batch in (B, 1, max(1, B // 2)):
        X = rng.normal(size=(batch, n_in))
        check_pass(model, loss, torch_loss, X, case.target(rng, batch, n_out))


@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["unit", "saturating"])
@pytest.mark.parametrize("make", HIDDEN, ids=[
    "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "softplus", "elu", "identity",
    "softmax"])
def test_each_activation_matches_autograd(make: Callable[[Any], lw.Layer], scale: float) -> None:
    """Every activation, twice in a 3-layer net under MSE, matches autograd to 1e-10; with
    inputs ×30 too, which saturates sigmoid/tanh and crosses Softplus's threshold of 20."""
    rng = np.random.default_rng(7)
    model = lw.Sequential(lw.Dense(4, 6, dtype=np.float64, rng=1), make(rng),
                          lw.Dense(6, 5, dtype=np.float64, rng=2), make(rng),
                          lw.Dense(5, 3, dtype=np.float64, rng=3))
    randomise_biases(model, rng)
    X = scale * rng.normal(size=(9, 4))
    check_pass(model, lw.MSE(), half_mse, X, rng.normal(size=(9, 3)))


@pytest.mark.parametrize("alpha", [0.01, 0.3, 1.0, 2.5])
def test_leaky_relu_and_elu_alphas_match_autograd(alpha: float) -> None:
    """LeakyReLU(α) and ELU(α) for α below, at and above 1 match torch's leaky_relu/elu."""
    rng = np.random.default_rng(3)
    model = lw.Sequential(lw.Dense(3, 8, dtype=np.float64, rng=0), lw.LeakyReLU(alpha),
                          lw.Dense(8, 8, dtype=np.float64, rng=1), lw.ELU(alpha),
                          lw.Dense(8, 2, dtype=np.float64, rng=2))
    randomise_biases(model, rng)
    check_pass(model, lw.MSE(), half_mse, 3 * rng.normal(size=(6, 3)), rng.normal(size=(6, 2)))


def test_elu_negative_alpha_matches_autograd() -> None:
    """ELU accepts any α; with α < 0, f′(z) = α e^z below zero must still be used there.

    (The derivative is taken from the output, A + α, but z ≤ 0 is detected as A ≤ 0, which
    only holds for α ≥ 0.)
    """
    model = lw.Sequential(lw.Dense(3, 4, dtype=np.float64, rng=0), lw.ELU(alpha=-0.5),
                          lw.Dense(4, 2, dtype=np.float64, rng=1))
    rng = np.random.default_rng(4)
    check_pass(model, lw.MSE(), half_mse, rng.normal(size=(5, 3)), rng.normal(size=(5, 2)))


def test_cross_entropy_smoothing_of_unnormalised_targets_matches_torch() -> None:
    """CrossEntropy(label_smoothing=ε) on soft targets whose rows do not sum to 1 smooths as
    torch does, t ← (1 − ε)t + ε/K (the formula in its docstring), for value and gradient."""
    rng = np.random.default_rng(5)
    model = lw.Sequential(lw.Dense(4, 5, dtype=np.float64, rng=0), lw.Tanh(),
                          lw.Dense(5, 3, dtype=np.float64, rng=1))
    T = rng.uniform(0, 1, size=(6, 3))                     # rows sum to anything in (0, 3)
    check_pass(model, lw.CrossEntropy(label_smoothing=0.2),
               lambda a, y: F.cross_entropy(a, y, label_smoothing=0.2),
               rng.normal(size=(6, 4)), T)


# -- 2. optimizers against torch.optim ----------------------------------------------------------
# torch.optim decays every parameter it is given, so the entries with weight decay set
# decay_biases=True; weights-only decay (the default) against torch's param groups is in
# test_init_decay.py.
OPTIMIZERS: dict[str, tuple[Callable[[], lw.Optimizer], Callable[[list[Any]], Any]]] = {
    "sgd": (lambda: lw.SGD(lr=0.1),
            lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum": (lambda: lw.SGD(lr=0.05, momentum=0.9),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    "sgd_nesterov": (lambda: lw.SGD(lr=0.05, momentum=0.9, nesterov=True),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": (lambda: lw.SGD(lr=0.1, weight_decay=0.05, decay_biases=True),
                         lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.05)),
    "sgd_momentum_dampening": (
        lambda: lw.SGD(lr=0.05, momentum=0.8, dampening=0.3),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3)),
    "sgd_nesterov_weight_decay": (
        lambda: lw.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01,
                       decay_biases=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam": (lambda: lw.Adam(lr=0.01),
             lambda p: torch.optim.Adam(p, lr=0.01)),
    "adam_betas_eps": (lambda: lw.Adam(lr=0.02, betas=(0.8, 0.95), eps=1e-6),
                       lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.95), eps=1e-6)),
    "adam_weight_decay": (lambda: lw.Adam(lr=0.01, weight_decay=0.05, decay_biases=True),
                          lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.05)),
    "adamw_default_decay": (lambda: lw.AdamW(lr=0.01, decay_biases=True),
                            lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01)),
    "adamw_decay_0.2": (lambda: lw.AdamW(lr=0.01, weight_decay=0.2, decay_biases=True),
                        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.2)),
    "rmsprop": (lambda: lw.RMSprop(lr=0.01),
                lambda p: torch.optim.RMSprop(p, lr=0.01)),
    "rmsprop_momentum": (lambda: lw.RMSprop(lr=0.005, momentum=0.9),
                         lambda p: torch.optim.RMSprop(p, lr=0.005, momentum=0.9)),
    "rmsprop_centered": (lambda: lw.RMSprop(lr=0.01, alpha=0.9, centered=True),
                         lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, centered=True)),
    "rmsprop_weight_decay": (lambda: lw.RMSprop(lr=0.01, weight_decay=0.05, decay_biases=True),
                             lambda p: torch.optim.RMSprop(p, lr=0.01, weight_decay=0.05)),
    "rmsprop_all": (
        lambda: lw.RMSprop(lr=0.005, alpha=0.95, eps=1e-6, weight_decay=0.01, momentum=0.5,
                           centered=True, decay_biases=True),
        lambda p: torch.optim.RMSprop(p, lr=0.005, alpha=0.95, eps=1e-6, weight_decay=0.01,
                                      momentum=0.5, centered=True)),
}


def small_mlp(seed: int, sizes: tuple[int, ...] = (6, 9, 7, 4)) -> lw.Sequential:
    """Dense–Tanh–Dense–ReLU–Dense in float64 with random biases."""
    acts = [lw.Tanh, lw.ReLU]
    layers: list[lw.Layer] = []
    for k in range(len(sizes) - 1):
        layers.append(lw.Dense(sizes[k], sizes[k + 1], dtype=np.float64, rng=seed + k))
        if k < len(sizes) - 2:
            layers.append(acts[k % 2]())
    model = lw.Sequential(layers)
    randomise_biases(model, np.random.default_rng(seed))
    return model


def loss_pair(name: str) -> tuple[lw.Loss, Callable[[Any, Any], Any], Callable[..., np.ndarray]]:
    if name == "ce":
        return lw.CrossEntropy(), F.cross_entropy, int_labels
    return lw.MSE(), half_mse, regression_targets


def assert_same_weights(model: lw.Sequential, params: dict[int, tuple[Any, Any]], tol: float
                        ) -> None:
    for i, d in dense_layers(model).items():
        assert_close(d.W, params[i][0], tol, f"W of layer {i}")
        assert_close(d.b, params[i][1], tol, f"b of layer {i}")


@pytest.mark.parametrize("update", ["numpy", "blas"])
@pytest.mark.parametrize("loss_name", ["ce", "mse"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_optimizer_matches_torch_optim(opt_name: str, loss_name: str, update: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """50 steps from the same weights on the same random batches (sizes 1–12): every parameter
    equals torch.optim's to 1e-8, and the parameters did move. Both ways of running the fused
    updates are checked: NumPy calls, and BLAS axpy/axpby (used for large buffers)."""
    monkeypatch.setattr(_blas, "MIN_SIZE", 1 if update == "blas" else 1 << 62)
    make_lw, make_torch = OPTIMIZERS[opt_name]
    model = small_mlp(seed=11)
    W0 = {i: d.W.copy() for i, d in dense_layers(model).items()}
    params = torch_params(model)
    opt, opt_t = make_lw(), make_torch(flat_params(params))
    loss, torch_loss, target = loss_pair(loss_name)
    rng = np.random.default_rng(12)
    lw_params = model.parameters()
    for _ in range(50):
        B = int(rng.integers(1, 13))
        X, y = rng.normal(size=(B, 6)), target(rng, B, 4)
        loss.forward(model.forward(X, training=True), y)
        model.backward(loss.backward())
        opt.step(lw_params)

        opt_t.zero_grad()
        torch_loss(torch_forward(model, params, as_torch(X)), as_torch(y)).backward()
        opt_t.step()
    assert_same_weights(model, params, STEPS_TOL)
    moved = max(rel_err(d.W, W0[i]) for i, d in dense_layers(model).items())
    assert moved > 1e-3, f"parameters barely moved ({moved:.1e}): the test would be vacuous"


@pytest.mark.parametrize("opt_name", ["sgd_momentum_dampening", "adam", "rmsprop_all"])
def test_optimizer_reused_on_new_parameters_starts_fresh(opt_name: str) -> None:
    """An optimizer that stepped on one model, then is given another model's parameters (a new
    layout, so its state is re-allocated), behaves like a fresh torch optimizer on that model:
    momentum starts as the first gradient and Adam's bias correction starts at step 1."""
    make_lw, make_torch = OPTIMIZERS[opt_name]
    opt = make_lw()
    rng = np.random.default_rng(13)
    first = small_mlp(seed=1, sizes=(3, 4, 2))
    for _ in range(5):                                      # a few steps on another model
        out = first.forward(rng.normal(size=(4, 3)), training=True)
        first.backward(out)                                  # any gradient will do
        opt.step(first.parameters())

    model = small_mlp(seed=2)
    params = torch_params(model)
    opt_t = make_torch(flat_params(params))
    lw_params = model.parameters()
    for _ in range(10):
        X, y = rng.normal(size=(5, 6)), int_labels(rng, 5, 4)
        loss = lw.CrossEntropy()
        loss.forward(model.forward(X, training=True), y)
        model.backward(loss.backward())
        opt.step(lw_params)

        opt_t.zero_grad()
        F.cross_entropy(torch_forward(model, params, as_torch(X)), as_torch(y)).backward()
        opt_t.step()
    assert_same_weights(model, params, STEPS_TOL)


# -- 3. schedules against torch.optim.lr_scheduler ----------------------------------------------
def torch_lrs(make_scheduler: Callable[[Any], Any], base_lr: float, epochs: int) -> list[float]:
    """The learning rate of each epoch 0..epochs−1, stepping the scheduler once per epoch."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()                                          # (no gradient: nothing changes)
        sched.step()
    return lrs


def _sequential_warmup_cosine(opt: Any, epochs: int, warmup: int, min_lr: float) -> Any:
    sch = torch.optim.lr_scheduler
    return sch.SequentialLR(opt, [
        sch.LinearLR(opt, start_factor=1 / (warmup + 1), end_factor=1.0, total_iters=warmup),
        sch.CosineAnnealingLR(opt, T_max=epochs - warmup, eta_min=min_lr)], milestones=[warmup])


SCHEDULES: dict[str, tuple[Any, Callable[[Any], Any], int]] = {
    "step_3_0.5": (lw.StepDecay(step_size=3, gamma=0.5),
                   lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 20),
    "step_1_0.9": (lw.StepDecay(step_size=1, gamma=0.9),
                   lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.9), 30),
    "step_defaults": (lw.StepDecay(),
                      lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=10, gamma=0.1), 35),
    "exponential_0.9": (lw.ExponentialDecay(gamma=0.9),
                        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), 40),
    "exponential_1.05": (lw.ExponentialDecay(gamma=1.05),
                         lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=1.05), 20),
    "cosine_1": (lw.CosineDecay(1),
                 lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=1), 1),
    "cosine_7": (lw.CosineDecay(7),
                 lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7), 7),
    "cosine_50_min": (lw.CosineDecay(50, min_lr=1e-3),
                      lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
                          o, T_max=50, eta_min=1e-3), 50),
    "cosine_warmup": (lw.CosineDecay(20, warmup=4, min_lr=1e-4),
                      lambda o: _sequential_warmup_cosine(o, 20, 4, 1e-4), 20),
}


@pytest.mark.parametrize("base_lr", [0.1, 3e-4])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch_lr_scheduler(name: str, base_lr: float) -> None:
    """schedule(epoch, base_lr) for epochs 0..n−1 equals the torch scheduler's per-epoch lr to
    1e-12 (StepLR, ExponentialLR, CosineAnnealingLR, and warm-up as LinearLR → cosine)."""
    schedule, make_torch, epochs = SCHEDULES[name]
    ours = [schedule(e, base_lr) for e in range(epochs)]
    theirs = torch_lrs(make_torch, base_lr, epochs)
    np.testing.assert_allclose(ours, theirs, rtol=LR_TOL, atol=0)


# -- 4. a whole fit against the torch loop ------------------------------------------------------
FITS: dict[str, tuple[Callable[[], lw.Optimizer], Callable[[list[Any]], Any], str, Any, Any]] = {
    # name: (layerwise optimizer, torch optimizer, targets, layerwise schedule, torch scheduler)
    "sgd_momentum_ce_labels": (
        lambda: lw.SGD(lr=0.05, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), "labels", None, None),
    "sgd_nesterov_ce_onehot_step": (
        lambda: lw.SGD(lr=0.05, momentum=0.9, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True), "onehot",
        lw.StepDecay(step_size=2, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5)),
    "adam_mse_cosine": (
        lambda: lw.Adam(lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01), "regression",
        lw.CosineDecay(6, min_lr=1e-3),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6, eta_min=1e-3)),
}


@pytest.mark.parametrize("name", list(FITS))
def test_fit_matches_torch_training_loop(name: str) -> None:
    """model.fit (shuffle=False, 23 samples in batches of 5, so the last has 3) ends with the
    same weights as the torch loop over the same batches (1e-8), with the same per-epoch
    loss and learning rate in its history."""
    make_lw, make_torch, targets, schedule, make_scheduler = FITS[name]
    N, batch_size, epochs = 23, 5, 6
    rng = np.random.default_rng(21)
    X = rng.normal(size=(N, 6))
    if targets == "regression":
        y, loss, torch_loss = rng.normal(size=(N, 4)), lw.MSE(), half_mse
    else:
        labels = rng.integers(0, 4, size=N)
        y = labels if targets == "labels" else np.eye(4)[labels]
        loss, torch_loss = lw.CrossEntropy(), F.cross_entropy
    model = small_mlp(seed=22)
    params = torch_params(model)                            # the starting weights, copied

    history = model.fit(X, y, loss=loss, optimizer=make_lw(), epochs=epochs,
                        batch_size=batch_size, shuffle=False, verbose=0, schedule=schedule)

    opt_t = make_torch(flat_params(params))
    sched_t = make_scheduler(opt_t) if make_scheduler else None
    Xt, yt = as_torch(X), as_torch(y)
    epoch_loss, epoch_lr = [], []
    for _ in range(epochs):
        epoch_lr.append(opt_t.param_groups[0]["lr"])
        total = 0.0
        for s in range(0, N, batch_size):
            opt_t.zero_grad()
            L_t = torch_loss(torch_forward(model, params, Xt[s:s + batch_size]),
                             yt[s:s + batch_size])
            L_t.backward()
            opt_t.step()
            total += L_t.item() * len(Xt[s:s + batch_size])
        epoch_loss.append(total / N)
        if sched_t is not None:
            sched_t.step()

    assert_same_weights(model, params, STEPS_TOL)
    assert_close(history["loss"], epoch_loss, STEPS_TOL, "per-epoch training loss")
    np.testing.assert_allclose(history["lr"], epoch_lr, rtol=LR_TOL, atol=0)
