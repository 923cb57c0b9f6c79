!> Tridiagonal linear solvers shared by the soil heat and soil water steps.
!>
!> Specification: spec/physics.md section 7.2 (the same algorithm is used by
!> the soil-water step, section 8.4).
module nt_tridiagonal
  use nt_kinds, only: dp
  implicit none
  private

  public :: tridiag_solve, tridiag_solve_sym

contains

  !> Solve a(k) x(k-1) + b(k) x(k) + c(k) x(k+1) = r(k), k = 1..n, with the
  !> Thomas algorithm of spec 7.2 (each row divides once: the pivot's
  !> reciprocal multiplies both P_k and Delta_k, as Noah's ROSR12 does):
  !>   P_1 = -c_1/b_1,  Delta_1 = r_1/b_1,
  !>   P_k = -c_k/(b_k + a_k P_{k-1}),  Delta_k = (r_k - a_k Delta_{k-1})/(b_k + a_k P_{k-1}),
  !>   x_n = Delta_n,   x_k = P_k x_{k+1} + Delta_k.
  !> a(1) is never used and c(n) is treated as 0 (whatever its value).
  !> No pivoting: the callers' matrices are diagonally dominant.
  !>   n : number of unknowns (>= 1) (in)
  !>   a : sub-diagonal, a(k) multiplies x(k-1) (in)
  !>   b : diagonal (in)
  !>   c : super-diagonal, c(k) multiplies x(k+1) (in)
  !>   r : right-hand side (in)
  !>   x : solution (out)
  pure subroutine tridiag_solve(n, a, b, c, r, x)
    integer,  intent(in)  :: n
    real(dp), intent(in)  :: a(n), b(n), c(n), r(n)
    real(dp), intent(out) :: x(n)

    real(dp) :: p(n)        ! P_k, elimination multipliers
    real(dp) :: delta(n)    ! Delta_k, reduced right-hand side
    real(dp) :: rdenom      ! 1/(b_k + a_k P_{k-1})
    integer  :: k

    if (n == 1) then
      x(1) = r(1)/b(1)
      return
    end if

    p(1) = -c(1)/b(1)
    delta(1) = r(1)/b(1)
    do k = 2, n - 1
      rdenom = 1.0_dp/(b(k) + a(k)*p(k-1))
      p(k) = -c(k)*rdenom
      delta(k) = (r(k) - a(k)*delta(k-1))*rdenom
    end do
    ! last row: c(n) = 0, so only Delta_n is needed (x_n = Delta_n)
    rdenom = 1.0_dp/(b(n) + a(n)*p(n-1))
    delta(n) = (r(n) - a(n)*delta(n-1))*rdenom

    x(n) = delta(n)
    do k = n - 1, 1, -1
      x(k) = p(k)*x(k+1) + delta(k)
    end do
  end subroutine tridiag_solve

  !> Solve a symmetric tridiagonal system with off-diagonal entries -g,
  !>   -g(k-1) x(k-1) + d(k) x(k) - g(k) x(k+1) = r(k),  k = 1..n
  !> (a_k = -g(k-1), b_k = d(k), c_k = -g(k) in the notation of tridiag_solve;
  !> g(n) is never used).  The heat and water systems have this form once each
  !> row is multiplied by its layer's storage factor (Delta z_k C_k / DT,
  !> Delta z_k / DT): the interface conductance then appears with the same
  !> value in both rows it couples.
  !>
  !> Elimination from both ends (a "twisted" Thomas algorithm, the same
  !> Gaussian elimination without pivoting in another row order, so the same
  !> solution up to round-off).  With m = (n+1)/2, the recursions of spec 7.2
  !> run downwards over rows 1..m-1,
  !>   D_1 = d(1),  D_k = d(k) - g(k-1) P_{k-1} = d(k) - g(k-1)**2/D_{k-1},
  !>   P_k = g(k)/D_k,  Delta_k = (r(k) + g(k-1) Delta_{k-1})/D_k   (x_k = P_k x_{k+1} + Delta_k),
  !> and, mirrored, upwards over rows n..m+1,
  !>   E_n = d(n),  E_k = d(k) - g(k)**2/E_{k+1},
  !>   Q_k = g(k-1)/E_k,  Eps_k = (r(k) + g(k) Eps_{k+1})/E_k     (x_k = Q_k x_{k-1} + Eps_k);
  !> row m then gives
  !>   (d(m) - g(m-1) P_{m-1} - g(m) Q_{m+1}) x_m = r(m) + g(m-1) Delta_{m-1} + g(m) Eps_{m+1},
  !> and the back-substitutions run outwards from m.  The solve is latency
  !> bound (each pivot waits for the division of the previous one); the two
  !> halves are independent chains of half the length that the processor
  !> executes in parallel.
  !>
  !> nb independent systems (one per lane: the columns of a block) are solved
  !> together, lane index first, so that every row operation is a loop over
  !> lanes that the compiler vectorises; each lane's arithmetic is exactly the
  !> one-system elimination above (a single system is nb = 1).
  !>   nb : number of systems (lanes) (in)
  !>   n  : number of unknowns (>= 1) (in)
  !>   d  : diagonal (in)
  !>   g  : minus the off-diagonal, g(:, k) couples x(:, k) and x(:, k+1) (in)
  !>   r  : right-hand side (in)
  !>   x  : solution (out)
  pure subroutine tridiag_solve_sym(nb, n, d, g, r, x)
    integer,  intent(in)  :: nb, n
    real(dp), intent(in)  :: d(nb, n), g(nb, n), r(nb, n)
    real(dp), intent(out) :: x(nb, n)

    real(dp) :: dpiv(nb, n), p(nb, n), delta(nb, n)   ! D_k, P_k, Delta_k (rows 1..m-1)
    real(dp) :: epiv(nb, n), q(nb, n), eps(nb, n)     ! E_k, Q_k, Eps_k (rows m+1..n)
    real(dp) :: rp             ! 1/D_k or 1/E_k
    real(dp) :: piv(nb), rhs(nb)   ! pivot and right-hand side of row m
    integer  :: c, k, m

    m = (n + 1)/2

    ! pivots: the two chains of dependent divisions
    if (m > 1) dpiv(:, 1) = d(:, 1)
    do k = 2, m - 1
      do c = 1, nb
        dpiv(c, k) = d(c, k) - (g(c, k-1)*g(c, k-1))/dpiv(c, k-1)
      end do
    end do
    if (m < n) epiv(:, n) = d(:, n)
    do k = n - 1, m + 1, -1
      do c = 1, nb
        epiv(c, k) = d(c, k) - (g(c, k)*g(c, k))/epiv(c, k+1)
      end do
    end do

    ! multipliers and reduced right-hand sides
    piv = d(:, m)
    rhs = r(:, m)
    if (m > 1) then
      do c = 1, nb
        rp = 1.0_dp/dpiv(c, 1)
        p(c, 1) = g(c, 1)*rp
        delta(c, 1) = r(c, 1)*rp
      end do
      do k = 2, m - 1
        do c = 1, nb
          rp = 1.0_dp/dpiv(c, k)
          p(c, k) = g(c, k)*rp
          delta(c, k) = (r(c, k) + g(c, k-1)*delta(c, k-1))*rp
        end do
      end do
      do c = 1, nb
        piv(c) = piv(c) - g(c, m-1)*p(c, m-1)
        rhs(c) = rhs(c) + g(c, m-1)*delta(c, m-1)
      end do
    end if
    if (m < n) then
      do c = 1, nb
        rp = 1.0_dp/epiv(c, n)
        q(c, n) = g(c, n-1)*rp
        eps(c, n) = r(c, n)*rp
      end do
      do k = n - 1, m + 1, -1
        do c = 1, nb
          rp = 1.0_dp/epiv(c, k)
          q(c, k) = g(c, k-1)*rp
          eps(c, k) = (r(c, k) + g(c, k)*eps(c, k+1))*rp
        end do
      end do
      do c = 1, nb
        piv(c) = piv(c) - g(c, m)*q(c, m+1)
        rhs(c) = rhs(c) + g(c, m)*eps(c, m+1)
      end do
    end if

    ! row m, then back-substitution outwards
    do c = 1, nb
      x(c, m) = rhs(c)/piv(c)
    end do
    do k = m - 1, 1, -1
      do c = 1, nb
        x(c, k) = p(c, k)*x(c, k+1) + delta(c, k)
      end do
    end do
    do k = m + 1, n
      do c = 1, nb
        x(c, k) = q(c, k)*x(c, k-1) + eps(c, k)
      end do
    end do
  end subroutine tridiag_solve_sym

end module nt_tridiagonal
