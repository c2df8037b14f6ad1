// dt-sql-parser's dist/ is ES modules written for bundlers: it imports directories and files
// without extensions. This resolve hook lets plain Node load it (dir -> dir/index.js, x -> x.js).
export async function resolve(specifier, context, next) {
    try {
        return await next(specifier, context);
    } catch (e) {
        if (e.code === 'ERR_UNSUPPORTED_DIR_IMPORT')
            return next(specifier + '/index.js', context);
        if (e.code === 'ERR_MODULE_NOT_FOUND' && specifier.startsWith('.'))
            return next(specifier + '.js', context);
        throw e;
    }
}
