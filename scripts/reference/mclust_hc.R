# mclust's model-based hierarchical agglomeration (its EM start) for em_core's tests; no R in tests.
#   Rscript scripts/reference/mclust_hc.R
# Writes tests/core/reference/mclust_hc.json: for each dataset under tests/core/reference/data,
# hclass(hc(X, modelName = "VVV", use = "SVD"), 1:16), the partition at every level 1..16.
suppressPackageStartupMessages({ library(mclust); library(jsonlite) })
out <- "tests/core/reference"
names <- c("quakes", "swiss", "usarrests", "trees", "mtcars", "lifecyclesavings",
           "gvhd_pos", "euro_unemployment", "wine", "breast_cancer")
levels <- 1:16
res <- list()
for (name in names) {
  X <- as.matrix(read.csv(file.path(out, "data", paste0(name, ".csv"))))
  ks <- levels[levels <= nrow(X)]
  tree <- hc(X, modelName = "VVV", use = "SVD")
  cls <- hclass(tree, ks)
  res[[name]] <- list(levels = ks,
                      labels = lapply(seq_along(ks), function(i) as.integer(cls[, i])))
}
res[["mclust_version"]] <- as.character(packageVersion("mclust"))
writeLines(toJSON(res, auto_unbox = TRUE), file.path(out, "mclust_hc.json"))
