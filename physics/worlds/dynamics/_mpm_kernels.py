"""Taichi kernels of the 2-D MLS-MPM solver (imported only when a particle world runs).

Moving Least Squares MPM (Hu et al., SIGGRAPH 2018) with a quadratic B-spline
kernel, following the structure of Taichi's ``mpm99`` example, on ndarrays so
one compiled kernel serves every particle count.  Materials (``mat``)::

    FLUID   pressure from the volume ratio J only (F is reset to sqrt(J) I)
    RIGID   no stress of its own; after every substep the particles of each rigid
            object are projected to the rigid motion closest to them
            (:func:`rigid_project`: shape matching of positions, linear and angular
            momentum kept, C the rigid velocity gradient, F the rotation)
    PLASTIC snow-like elasto-plasticity: singular values of F clamped to
            [1 - theta_c, 1 + theta_s], hardening exp(xi (1 - Jp))
    KINEMATIC  not simulated here: walls and grippers enter as boundary
            conditions (planes and rectangles) on the grid

Boundary conditions on grid velocities, applied after gravity:

    planes  ``[P, 4]`` rows (nx, ny, d, vn): a node with ``x . n < d`` keeps
            ``v . n >= vn`` (a slip wall moving at normal speed vn)
    rects   ``[R, 6]`` rows (x0, y0, x1, y1, vx, vy): a node inside takes the
            rectangle's velocity (a sticky kinematic body)
"""

# no `from __future__ import annotations`: Taichi reads the kernels' annotations as objects

import taichi as ti

FLUID, RIGID, PLASTIC = 0, 1, 2

vec2 = ti.math.vec2
mat2 = ti.math.mat2
V2 = ti.types.ndarray(dtype=vec2, ndim=1)
M2 = ti.types.ndarray(dtype=mat2, ndim=1)
F1 = ti.types.ndarray(dtype=ti.f32, ndim=1)
I1 = ti.types.ndarray(dtype=ti.i32, ndim=1)
F2 = ti.types.ndarray(dtype=ti.f32, ndim=2)
G3 = ti.types.ndarray(dtype=ti.math.vec3, ndim=2)


@ti.kernel
def substep(
    x: V2, v: V2, C: M2, F: M2, Jp: F1, mat: I1, mass: F1, grid: G3,
    planes: F2, n_planes: ti.i32, rects: F2, n_rects: ti.i32,
    dt: ti.f32, dx: ti.f32, p_vol: ti.f32, gravity: ti.f32,
    fluid_k: ti.f32, mu0: ti.f32, la0: ti.f32, theta_c: ti.f32, theta_s: ti.f32, hardening: ti.f32,
):
    """One MLS-MPM substep: P2G, grid update with boundaries, G2P."""
    ng = grid.shape[0]
    inv_dx = 1.0 / dx
    for i, j in ti.ndrange(ng, ng):
        grid[i, j] = ti.math.vec3(0.0, 0.0, 0.0)
    for p in range(x.shape[0]):
        base = ti.cast(x[p] * inv_dx - 0.5, ti.i32)
        fx = x[p] * inv_dx - ti.cast(base, ti.f32)
        w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2]
        Fp = (ti.Matrix.identity(ti.f32, 2) + dt * C[p]) @ F[p]
        stress = ti.Matrix.zero(ti.f32, 2, 2)
        if mat[p] == FLUID:
            J = Fp.determinant()
            Fp = ti.Matrix.identity(ti.f32, 2) * ti.sqrt(ti.max(J, 1e-6))
            stress = fluid_k * J * (J - 1.0) * ti.Matrix.identity(ti.f32, 2)
        elif mat[p] == PLASTIC:
            h = ti.min(ti.exp(hardening * (1.0 - Jp[p])), 20.0)
            mu, la = mu0 * h, la0 * h
            U, sig, V = ti.svd(Fp)
            J = 1.0
            for d in ti.static(range(2)):
                new_sig = ti.min(ti.max(sig[d, d], 1.0 - theta_c), 1.0 + theta_s)
                Jp[p] *= sig[d, d] / new_sig
                sig[d, d] = new_sig
                J *= new_sig
            Fp = U @ sig @ V.transpose()
            stress = 2.0 * mu * (Fp - U @ V.transpose()) @ Fp.transpose() + ti.Matrix.identity(ti.f32, 2) * la * J * (J - 1.0)
        F[p] = Fp
        stress = (-dt * p_vol * 4.0 * inv_dx * inv_dx) * stress
        affine = stress + mass[p] * C[p]
        for i, j in ti.static(ti.ndrange(3, 3)):
            offset = ti.Vector([i, j])
            dpos = (ti.cast(offset, ti.f32) - fx) * dx
            weight = w[i][0] * w[j][1]
            mv = weight * (mass[p] * v[p] + affine @ dpos)
            grid[base + offset] += ti.math.vec3(mv[0], mv[1], weight * mass[p])
    for i, j in ti.ndrange(ng, ng):
        g = grid[i, j]
        if g[2] > 0:
            vel = ti.math.vec2(g[0], g[1]) / g[2]
            vel[1] -= dt * gravity
            pos = ti.math.vec2(i, j) * dx
            for k in range(n_planes):
                n = ti.math.vec2(planes[k, 0], planes[k, 1])
                if pos.dot(n) < planes[k, 2]:
                    vn = vel.dot(n)
                    if vn < planes[k, 3]:
                        vel += (planes[k, 3] - vn) * n
            for k in range(n_rects):
                if rects[k, 0] <= pos[0] <= rects[k, 2] and rects[k, 1] <= pos[1] <= rects[k, 3]:
                    vel = ti.math.vec2(rects[k, 4], rects[k, 5])
            grid[i, j] = ti.math.vec3(vel[0], vel[1], g[2])
    for p in range(x.shape[0]):
        base = ti.cast(x[p] * inv_dx - 0.5, ti.i32)
        fx = x[p] * inv_dx - ti.cast(base, ti.f32)
        w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2]
        new_v = ti.math.vec2(0.0, 0.0)
        new_C = ti.Matrix.zero(ti.f32, 2, 2)
        for i, j in ti.static(ti.ndrange(3, 3)):
            offset = ti.Vector([i, j])
            dpos = ti.cast(offset, ti.f32) - fx
            g = grid[base + offset]
            gv = ti.math.vec2(g[0], g[1])
            weight = w[i][0] * w[j][1]
            new_v += weight * gv
            new_C += 4.0 * inv_dx * weight * gv.outer_product(dpos)
        v[p] = new_v
        C[p] = new_C
        x[p] += dt * new_v
        x[p] = ti.math.clamp(x[p], 2.0 * dx, 1.0 - 2.0 * dx)  # never leave the grid


@ti.kernel
def rigid_project(x: V2, v: V2, C: M2, F: M2, mass: F1, obj: I1, rest: V2, acc: F2):
    """Move each rigid object's particles to the rigid motion closest to them.

    ``obj[p]`` is the rigid object of particle p (-1: none), ``rest[p]`` its offset
    from the object's centre of mass at rest, ``acc`` ``[K, 12]`` scratch space.
    """
    for k, c in acc:
        acc[k, c] = 0.0
    for p in range(x.shape[0]):
        k = obj[p]
        if k >= 0:
            m = mass[p]
            acc[k, 0] += m
            acc[k, 1] += m * x[p][0]
            acc[k, 2] += m * x[p][1]
            acc[k, 3] += m * v[p][0]
            acc[k, 4] += m * v[p][1]
    for p in range(x.shape[0]):
        k = obj[p]
        if k >= 0:
            m = mass[p]
            c = ti.math.vec2(acc[k, 1], acc[k, 2]) / acc[k, 0]
            r = x[p] - c
            q = rest[p]
            acc[k, 5] += m * r[0] * q[0]
            acc[k, 6] += m * r[0] * q[1]
            acc[k, 7] += m * r[1] * q[0]
            acc[k, 8] += m * r[1] * q[1]
            acc[k, 9] += m * (r[0] * v[p][1] - r[1] * v[p][0])  # angular momentum
            acc[k, 10] += m * r.dot(r)  # moment of inertia
    for p in range(x.shape[0]):
        k = obj[p]
        if k >= 0:
            A = ti.Matrix([[acc[k, 5], acc[k, 6]], [acc[k, 7], acc[k, 8]]])
            R, _ = ti.polar_decompose(A)
            c = ti.math.vec2(acc[k, 1], acc[k, 2]) / acc[k, 0]
            vc = ti.math.vec2(acc[k, 3], acc[k, 4]) / acc[k, 0]
            omega = acc[k, 9] / ti.max(acc[k, 10], 1e-12)
            r = R @ rest[p]
            x[p] = c + r
            v[p] = vc + omega * ti.math.vec2(-r[1], r[0])
            C[p] = ti.Matrix([[0.0, -omega], [omega, 0.0]])
            F[p] = R
