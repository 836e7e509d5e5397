//! Small dense linear-algebra helpers: ndarray ⇄ nalgebra, symmetric eigen-decompositions,
//! PSD inverse square roots, row-space bases and SPD solves.

use nalgebra::DMatrix;
use ndarray::Array2;

/// Copies an ndarray matrix into an nalgebra matrix.
pub fn to_na(a: &Array2<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
}

/// Copies an nalgebra matrix into an ndarray matrix.
pub fn from_na(a: &DMatrix<f64>) -> Array2<f64> {
    Array2::from_shape_fn((a.nrows(), a.ncols()), |(i, j)| a[(i, j)])
}

/// Eigen-decomposition of a symmetric matrix (its symmetric part is used): eigenvalues in
/// descending order and the matching unit eigenvectors as the columns of the returned matrix.
pub fn sym_eigen(a: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let sym = (a + &a.t()) / 2.0;
    let eig = nalgebra::SymmetricEigen::new(to_na(&sym));
    let n = a.nrows();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| eig.eigenvalues[j].total_cmp(&eig.eigenvalues[i]));
    let values = order.iter().map(|&i| eig.eigenvalues[i]).collect();
    let vectors = Array2::from_shape_fn((n, n), |(r, c)| eig.eigenvectors[(r, order[c])]);
    (values, vectors)
}

/// Pseudo-inverse square root of a symmetric positive semi-definite matrix: eigenvalues below
/// `rel_tol · λ_max` are treated as zero (those directions carry no data).
pub fn psd_inv_sqrt(a: &Array2<f64>, rel_tol: f64) -> Array2<f64> {
    let (values, vectors) = sym_eigen(a);
    let top = values.first().copied().unwrap_or(0.0).max(0.0);
    let inv: Vec<f64> =
        values.iter().map(|&l| if l > rel_tol * top && l > 0.0 { 1.0 / l.sqrt() } else { 0.0 }).collect();
    let scaled = Array2::from_shape_fn(vectors.dim(), |(r, c)| vectors[[r, c]] * inv[c]);
    scaled.dot(&vectors.t())
}

/// Orthonormal basis of the row space of `w` (`k × d`), as the rows of an `r × d` matrix with
/// `r` the numerical rank (singular values below `rel_tol · σ_max` are dropped).
pub fn row_space_basis(w: &Array2<f64>, rel_tol: f64) -> Array2<f64> {
    let d = w.ncols();
    if w.nrows() == 0 {
        return Array2::zeros((0, d));
    }
    let gram = w.dot(&w.t());
    let (values, vectors) = sym_eigen(&gram);
    let top = values.first().copied().unwrap_or(0.0).max(0.0);
    let keep: Vec<usize> =
        (0..values.len()).filter(|&i| values[i] > 0.0 && values[i] > rel_tol * rel_tol * top).collect();
    let mut basis = Array2::<f64>::zeros((keep.len(), d));
    for (row, &i) in keep.iter().enumerate() {
        let v = vectors.column(i);
        let q = v.dot(w) / values[i].sqrt();
        basis.row_mut(row).assign(&q);
    }
    basis
}

/// Solves `A X = B` for a symmetric positive definite `A` (Cholesky, falling back to LU).
pub fn solve_spd(a: &Array2<f64>, b: &Array2<f64>) -> Option<Array2<f64>> {
    let na = to_na(a);
    let nb = to_na(b);
    if let Some(ch) = na.clone().cholesky() {
        return Some(from_na(&ch.solve(&nb)));
    }
    na.lu().solve(&nb).map(|x| from_na(&x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn eigen_reconstructs_and_sorts() {
        let a = array![[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]];
        let (vals, vecs) = sym_eigen(&a);
        assert!(vals.windows(2).all(|w| w[0] >= w[1]));
        let recon = vecs.dot(&Array2::from_diag(&ndarray::Array1::from(vals)).dot(&vecs.t()));
        for (x, y) in recon.iter().zip(a.iter()) {
            assert!((x - y).abs() < 1e-10);
        }
    }

    #[test]
    fn inverse_square_root_inverts() {
        let a = array![[4.0, 1.0], [1.0, 3.0]];
        let r = psd_inv_sqrt(&a, 1e-12);
        let id = r.dot(&a).dot(&r);
        assert!((id[[0, 0]] - 1.0).abs() < 1e-10 && (id[[1, 1]] - 1.0).abs() < 1e-10);
        assert!(id[[0, 1]].abs() < 1e-10);
    }

    #[test]
    fn row_space_basis_is_orthonormal_and_spans() {
        let w = array![[1.0, 1.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]];
        let q = row_space_basis(&w, 1e-6);
        assert_eq!(q.nrows(), 2);
        let g = q.dot(&q.t());
        for ((i, j), v) in g.indexed_iter() {
            assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-10);
        }
        // Every row of w lies in the span.
        let proj = w.dot(&q.t()).dot(&q);
        for (x, y) in proj.iter().zip(w.iter()) {
            assert!((x - y).abs() < 1e-10);
        }
    }
}
