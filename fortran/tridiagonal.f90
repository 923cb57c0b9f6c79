!> Tridiagonal linear solver shared by the soil heat and soil water steps.
!>
!> Specification: spec/physics.md section 7.2 (the same algorithm is used by
!> the soil-water step, section 8.4).
module nt_tridiagonal
  use nt_kinds, only: dp
  implicit none
  private

  public :: tridiag_solve

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

end module nt_tridiagonal
