# Reference fits of R's mclust for em_core's tests (run once; tests never need R).
#   Rscript scripts/reference/mclust_reference.R
# Writes tests/core/reference/data/<dataset>.csv (the eight R datasets),
# tests/core/reference/mclust_bic.json (14 models x G = 1..9, with and without priorControl())
# and tests/core/reference/mclust_fixed_points.json (fitted parameters, tight tolerance).
suppressPackageStartupMessages({ library(mclust); library(jsonlite) })
out <- "tests/core/reference"
dir.create(file.path(out, "data"), recursive = TRUE, showWarnings = FALSE)

write_data <- function(name, X) {
  X <- as.matrix(X)
  lines <- c(paste(colnames(X), collapse = ","),
             apply(X, 1, function(r) paste(sprintf("%.17g", r), collapse = ",")))
  writeLines(lines, file.path(out, "data", paste0(name, ".csv")))
}
data(GvHD, package = "mclust"); data(EuroUnemployment, package = "mclust")
set.seed(2026)
gvhd <- GvHD.pos[sort(sample(nrow(GvHD.pos), 1500)), ]
write_data("quakes", quakes[, c("lat", "long", "depth", "mag")])
write_data("swiss", swiss)
write_data("usarrests", USArrests)
write_data("trees", trees)
write_data("mtcars", mtcars[, c("mpg", "disp", "hp", "drat", "wt", "qsec")])
write_data("lifecyclesavings", LifeCycleSavings)
write_data("gvhd_pos", gvhd)
write_data("euro_unemployment", EuroUnemployment)

names <- c("quakes", "swiss", "usarrests", "trees", "mtcars", "lifecyclesavings",
           "gvhd_pos", "euro_unemployment", "wine", "breast_cancer")
models <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
            "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
read_data <- function(name) as.matrix(read.csv(file.path(out, "data", paste0(name, ".csv"))))

cells <- function(X, prior) {
  n <- nrow(X); d <- ncol(X)
  started <- proc.time()[["elapsed"]]
  bic <- if (is.null(prior)) mclustBIC(X, G = 1:9, modelNames = models, verbose = FALSE)
         else mclustBIC(X, G = 1:9, modelNames = models, prior = prior, verbose = FALSE)
  seconds <- proc.time()[["elapsed"]] - started
  res <- list()
  for (m in models) {
    res[[m]] <- list()
    for (G in 1:9) {
      b <- if (as.character(G) %in% rownames(bic) && m %in% colnames(bic))
        bic[as.character(G), m] else NA
      npar <- nMclustParams(m, d, G)
      res[[m]][[as.character(G)]] <- if (is.na(b)) NULL else
        list(bic = b, loglik = (b + npar * log(n)) / 2, npar = npar)
    }
  }
  list(cells = res, seconds = seconds)
}

reference <- list(meta = list(
  mclust_version = as.character(packageVersion("mclust")), r_version = R.version.string,
  generated = format(Sys.time(), "%Y-%m-%d"), bic_sign = "mclust: 2 loglik - npar log n",
  hc_use = mclust.options("hcUse"), subset = mclust.options("subset")), datasets = list())
for (name in names) {
  X <- read_data(name)
  noprior <- cells(X, NULL)
  prior <- suppressWarnings(cells(X, priorControl()))
  reference$datasets[[name]] <- list(
    n = nrow(X), d = ncol(X), columns = colnames(X),
    noprior = noprior$cells, prior = prior$cells,
    seconds = list(noprior = noprior$seconds, prior = prior$seconds),
    default_prior = lapply(c(EII = "EII", VVI = "VVI", VVV = "VVV"),
                           function(m) defaultPrior(X, G = 3, modelName = m)))
  cat(name, "done\n")
}
write(toJSON(reference, auto_unbox = TRUE, digits = NA, null = "null", pretty = FALSE),
      file.path(out, "mclust_bic.json"))

# Fixed points: each model's fit at G, re-run to a tight tolerance.
tight <- emControl(tol = c(1e-13, sqrt(.Machine$double.eps)), itmax = c(20000, 20000))
fixed <- list()
for (case in list(list("quakes", 3), list("wine", 3), list("trees", 2))) {
  name <- case[[1]]; G <- case[[2]]; X <- read_data(name)
  hcp <- hc(X, modelName = "VVV", use = mclust.options("hcUse"))
  z0 <- unmap(hclass(hcp, G))
  for (use_prior in c(FALSE, TRUE)) {
    for (m in models) {
      key <- paste(name, G, m, if (use_prior) "prior" else "noprior", sep = "/")
      pr <- if (use_prior) priorControl() else NULL
      fit <- tryCatch(suppressWarnings(me(X, modelName = m, z = z0, prior = pr, control = tight)),
                      error = function(e) NULL)
      if (is.null(fit) || is.na(fit$loglik)) { fixed[[key]] <- NULL; next }
      sigma <- fit$parameters$variance$sigma
      fixed[[key]] <- list(
        dataset = name, G = G, model = m, prior = use_prior, loglik = fit$loglik,
        iterations = as.numeric(attr(fit, "info"))[1],
        pro = as.numeric(fit$parameters$pro),
        mean = lapply(1:G, function(k) as.numeric(fit$parameters$mean[, k])),
        sigma = lapply(1:G, function(k) lapply(1:ncol(X), function(i) as.numeric(sigma[i, , k]))))
    }
  }
}
write(toJSON(fixed, auto_unbox = TRUE, digits = NA, null = "null"),
      file.path(out, "mclust_fixed_points.json"))
cat("fixed points:", length(fixed), "\n")
